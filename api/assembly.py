"""Build the components from settings.

Settings are read where the product is assembled, and only there: in these builders, in
`create_app` (api/app.py), which hands routes the `Services` built here, and in the `kb`
commands (api/cli.py), each of which assembles what it runs. Routes, middleware and the
components below `api/` take plain values (tests/test_settings.py keeps it so).

A component's defaults live in the component (its options dataclass, or a constant beside
it); each setting's default reads the one it feeds (api/settings.py), so the service, the CLI
and a component built with no arguments behave alike (tests/test_settings.py checks it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from api.deps import Services
from api.keys import KeyStore
from api.metrics import Metrics
from api.ratelimit import RateLimiter
from api.settings import Settings
from api.uploads import Uploader
from assistant.answerability import JudgeOptions
from assistant.audit import AUDIT_FILE, AuditLog
from assistant.citations import CheckOptions
from assistant.conflicts import ConflictFinder
from assistant.context import ContextOptions
from assistant.gap_clusters import GapClusterOptions, GapClusters
from assistant.generators import Generator, GeneratorConfig, make_generator, make_judge
from assistant.kb_health import KBHealth
from assistant.projects import ProjectFinder
from assistant.querylog import QueryLog
from assistant.service import Assistant, AssistantOptions
from assistant.signoff import SignOff
from assistant.tagging import warm as warm_tagger
from index.embedding import (
    CachedEmbedder,
    Embedder,
    EmbedderConfig,
    make_embedder,
    query_backend,
)
from index.environment import use_offline_environment
from index.filelock import FileLock
from index.filters import Principal
from index.hybrid import HybridRetriever, RetrievalOptions
from index.keyword import KeywordIndex, Tokenizer
from index.reviews import REVIEWS_FILE, ReviewStore
from index.store import ChromaServer, ChromaStore
from ingest.chunking import ChunkingOptions
from ingest.metadata import MetadataOptions
from ingest.sources import mark_data_folder
from ingest.sync import Ingester

if TYPE_CHECKING:  # imported by the builders below when they run
    from api.llamaindex_surface import LocalKnowledgeBase
    from evals.suite_runs import EvalRuns


def configure_runtime(settings: Settings) -> None:
    """Process-wide switches of third-party libraries: no telemetry, no hub downloads."""
    use_offline_environment()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("kb").setLevel(settings.log_level)
    for noisy in ("bm25s", "pikepdf", "sentence_transformers", "chromadb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_store(settings: Settings) -> ChromaStore:
    mark_data_folder(settings.data_dir)  # never ingested, even inside an ingested tree
    server = None
    if settings.chroma_host:
        server = ChromaServer(
            settings.chroma_host,
            settings.chroma_port,
            ssl=settings.chroma_ssl,
            auth_token=settings.chroma_auth_token,
            auth_header=settings.chroma_auth_header,
            tenant=settings.chroma_tenant,
            database=settings.chroma_database,
        )
    return ChromaStore.open(
        path=settings.chroma_path,
        server=server,
        chunks_name=settings.chunks_collection,
        documents_name=settings.documents_collection,
    )


def embedder_config(
    settings: Settings, *, threads: int | None = None, backend: str | None = None
) -> EmbedderConfig:
    return EmbedderConfig(
        backend=backend or settings.embed_backend,
        model_path=settings.embedding_model_path,
        batch_size=settings.embed_batch_size,
        threads=threads,
        onnx_dir=settings.embed_onnx_dir,
    )


def build_embedder(settings: Settings, *, threads: int | None = None) -> Embedder:
    """KB_EMBED_BACKEND's embedder; `threads` None uses every core (`kb ingest`)."""
    return make_embedder(embedder_config(settings, threads=threads))


def build_serve_embedder(settings: Settings) -> Embedder:
    """The service's embedder: KB_SERVE_EMBED_BACKEND's, on KB_SERVE_THREADS threads."""
    backend = query_backend(settings.embed_backend, settings.serve_embed_backend)
    return make_embedder(embedder_config(settings, threads=settings.serve_threads, backend=backend))


def build_answer_embedder(settings: Settings, embedder: Embedder) -> Embedder:
    """The embedder for answering: queries, sentences to rank and to check, remembered."""
    return CachedEmbedder(embedder, settings.embed_cache_entries)


def chunking_options(settings: Settings) -> ChunkingOptions:
    return ChunkingOptions(
        max_tokens=settings.chunk_max_tokens,
        overlap_tokens=settings.chunk_overlap_tokens,
        min_tokens=settings.chunk_min_tokens,
    )


def build_ingester(settings: Settings, store: ChromaStore, embedder: Embedder) -> Ingester:
    return Ingester(
        store,
        embedder,
        chunking=chunking_options(settings),
        metadata=metadata_options(settings),
        reviews=build_review_store(settings),
    )


def metadata_options(settings: Settings) -> MetadataOptions:
    return MetadataOptions(
        strict=settings.ingest_strict, departments=frozenset(settings.departments)
    )


def retrieval_options(settings: Settings) -> RetrievalOptions:
    return RetrievalOptions(
        mode=settings.retrieval_mode,
        dense_weight=settings.dense_weight,
        keyword_weight=settings.keyword_weight,
        rrf_k=settings.rrf_k,
        candidates=settings.retrieval_candidates,
    )


def build_retriever(settings: Settings, store: ChromaStore, embedder: Embedder) -> HybridRetriever:
    keyword = KeywordIndex(store, settings.keyword_index_path, Tokenizer())
    return HybridRetriever(store, embedder, keyword, retrieval_options(settings))


def generator_config(settings: Settings) -> GeneratorConfig:
    return GeneratorConfig(
        model_path=settings.llm_model_path,
        context_tokens=settings.llm_context_tokens,
        threads=settings.llm_threads,
        max_answer_tokens=settings.llm_max_tokens,
        refusal_probability=settings.llm_refusal_probability,
        replies_kept=settings.llm_replies_kept,
        base_url=settings.openai_base_url,
        model=settings.openai_model,
        api_key=settings.openai_api_key,
        timeout_s=settings.openai_timeout_s,
        retries=settings.openai_retries,
        context_words=settings.answer_context_words,
        quote_steps=settings.answer_quote_steps,
        quote_projects=settings.answer_quote_projects,
    )


def build_generator(settings: Settings, embedder: Embedder, name: str | None = None) -> Generator:
    return make_generator(name or settings.generator, generator_config(settings), embedder)


def assistant_options(settings: Settings) -> AssistantOptions:
    return AssistantOptions(
        k=settings.answer_sources,
        neighbors=settings.answer_neighbors,
        refusal_threshold=settings.refusal_threshold,
        check=CheckOptions(threshold=settings.citation_threshold),
        context=ContextOptions(documents=settings.answer_documents, words=settings.answer_words),
        rewrite_follow_ups=settings.answer_rewrite_follow_ups,
    )


def build_assistant(
    settings: Settings,
    retriever: HybridRetriever,
    embedder: Embedder,
    generator: Generator,
) -> Assistant:
    judge = None
    if settings.answer_judge == "auto":
        options = JudgeOptions(threshold=settings.answer_judge_threshold)
        judge = make_judge(generator_config(settings), generator, options)
    return Assistant(
        retriever,
        generator,
        embedder,
        today=settings.today_date,
        options=assistant_options(settings),
        judge=judge,
    )


def build_local_knowledge_base(
    settings: Settings, principal: Principal, embedder: Embedder | None = None
) -> LocalKnowledgeBase:
    """The LlamaIndex surface in process (api/llamaindex_surface.py, docs/llamaindex.md), over
    the assistant `kb ask` builds, asked as `principal`; `embedder`: a loaded one to share.
    llama-index is imported here, when asked for, so that other commands do not load it."""
    from api.llamaindex_surface import LocalKnowledgeBase

    store = build_store(settings)
    answering = build_answer_embedder(settings, embedder or build_embedder(settings))
    retriever = build_retriever(settings, store, answering)
    retriever.warm()
    generator = build_generator(settings, answering)
    assistant = build_assistant(settings, retriever, answering, generator)
    return LocalKnowledgeBase(retriever, assistant, store, principal, settings.today_date)


def build_services(settings: Settings, metrics: Metrics) -> Services:
    """Everything the HTTP service's routes use (the lifespan of api/app.py calls this)."""
    store = build_store(settings)
    embedder = build_serve_embedder(settings)
    cached = build_answer_embedder(settings, embedder)
    retriever = build_retriever(settings, store, cached)
    retriever.warm()  # load the model and the keyword index now, not on the first request
    warm_tagger()  # and the tagger: steps from other lists, follow-ups from new questions
    assistant = build_assistant(settings, retriever, cached, build_generator(settings, cached))
    ingester = build_ingester(settings, store, embedder)
    audit = build_audit_log(settings)
    query_log = QueryLog(settings.query_log_path)
    return Services(
        store=store,
        retriever=retriever,
        assistant=assistant,
        ingester=ingester,
        uploader=Uploader(ingester, store, settings.corpus_dir, settings.upload_max_bytes),
        keys=KeyStore(settings.keys_path),
        limiter=RateLimiter(
            settings.rate_limit_per_minute,
            settings.rate_limit_burst,
            path=settings.rate_limit_path,
        ),
        query_log=query_log,
        metrics=metrics,
        corpus_dir=settings.corpus_dir,
        today=settings.today_date,
        dev_auth=settings.auth == "dev",
        audit=audit,
        signoff=build_signoff(settings, store, audit),
        projects=build_projects(settings, store, retriever, cached),
        health=build_kb_health(settings, store, query_log),
        conflicts=build_conflicts(store, query_log, embedder),
        gap_clusters=build_gap_clusters(settings, store, query_log, embedder),
        eval_runs=build_eval_runs(settings, store, embedder),
        ingest_lock=build_ingest_lock(settings),
    )


def build_ingest_lock(settings: Settings) -> FileLock:
    """The lock every ingest of the data folder takes (uploads, syncs, reviews, `kb ingest`,
    `kb review`, `kb store check --repair`), in every process."""
    return FileLock(settings.ingest_lock_path)


def build_eval_runs(settings: Settings, store: ChromaStore, embedder: Embedder) -> EvalRuns:
    """Evaluation runs over the service's store and embedder, with its settings (changed per
    run), into KB_DATA_DIR/evals. evals/ is imported here, as `kb eval` imports it when it runs:
    api/ drives evals/ from outside, and nothing below api/ imports it."""
    from evals.suite_runs import EvalRuns

    return EvalRuns(settings, store, embedder, settings.eval_runs_dir)


# -- the review workflow: stored reviews, the audit log, marking documents reviewed ----------


def build_review_store(settings: Settings) -> ReviewStore:
    return ReviewStore(settings.data_dir / REVIEWS_FILE)


def build_audit_log(settings: Settings) -> AuditLog:
    return AuditLog(settings.data_dir / AUDIT_FILE)


def build_signoff(settings: Settings, store: ChromaStore, audit: AuditLog) -> SignOff:
    return SignOff(store, build_review_store(settings), audit, settings.today_date)


# -- governance views: similar projects, knowledge-base health ----------------------------------


def build_projects(
    settings: Settings, store: ChromaStore, retriever: HybridRetriever, embedder: Embedder
) -> ProjectFinder:
    return ProjectFinder(retriever, store, embedder, settings.today_date)


def build_kb_health(settings: Settings, store: ChromaStore, query_log: QueryLog) -> KBHealth:
    return KBHealth(
        store,
        query_log,
        settings.today_date,
        stale_target=settings.stale_target,
        eval_runs=settings.eval_runs_dir,
    )


def build_gap_clusters(
    settings: Settings, store: ChromaStore, query_log: QueryLog, embedder: Embedder
) -> GapClusters:
    """The gap report by topic; `embedder` is the plain one: a report's questions would push
    the answering cache's out of it."""
    options = GapClusterOptions(
        refusal_threshold=settings.refusal_threshold,
        departments=frozenset(settings.departments),
    )
    return GapClusters(query_log, store, embedder, settings.today_date, options)


def build_conflicts(store: ChromaStore, query_log: QueryLog, embedder: Embedder) -> ConflictFinder:
    """The supersession and conflict report; `embedder` is the plain one (not the answering
    cache: a report's sentences would push the questions out of it)."""
    return ConflictFinder(store, query_log, embedder)
