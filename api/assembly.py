"""Build the components from settings: the one place that reads `Settings`."""

from __future__ import annotations

import logging

from api.settings import Settings
from assistant.citations import CheckOptions
from assistant.generators import Generator, GeneratorConfig, make_generator
from assistant.service import Assistant, AssistantOptions
from index.embedding import CachedEmbedder, Embedder, SentenceTransformerEmbedder
from index.environment import use_offline_environment
from index.hybrid import HybridRetriever, RetrievalOptions
from index.keyword import KeywordIndex, Tokenizer
from index.store import ChromaStore
from ingest.chunking import ChunkingOptions
from ingest.sync import Ingester


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
    return ChromaStore.open(
        path=None if settings.chroma_host else settings.chroma_path,
        host=settings.chroma_host,
        port=settings.chroma_port,
        chunks_name=settings.chunks_collection,
        documents_name=settings.documents_collection,
    )


def build_embedder(
    settings: Settings, *, threads: int | None = None
) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(
        settings.embedding_model_path, batch_size=settings.embed_batch_size, threads=threads
    )


def build_answer_embedder(settings: Settings, embedder: Embedder) -> Embedder:
    """The embedder for answering: queries, sentences to rank and to check, remembered."""
    return CachedEmbedder(embedder, settings.embed_cache_entries)


def build_ingester(
    settings: Settings, store: ChromaStore, embedder: SentenceTransformerEmbedder
) -> Ingester:
    options = ChunkingOptions(
        max_tokens=settings.chunk_max_tokens,
        overlap_tokens=settings.chunk_overlap_tokens,
        min_tokens=settings.chunk_min_tokens,
    )
    return Ingester(store, embedder, chunking=options)


def build_retriever(settings: Settings, store: ChromaStore, embedder: Embedder) -> HybridRetriever:
    options = RetrievalOptions(
        mode=settings.retrieval_mode,
        dense_weight=settings.dense_weight,
        keyword_weight=settings.keyword_weight,
        rrf_k=settings.rrf_k,
        candidates=settings.retrieval_candidates,
    )
    keyword = KeywordIndex(store, settings.keyword_index_path, Tokenizer())
    return HybridRetriever(store, embedder, keyword, options)


def build_generator(settings: Settings, embedder: Embedder, name: str | None = None) -> Generator:
    config = GeneratorConfig(
        model_path=settings.llm_model_path,
        context_tokens=settings.llm_context_tokens,
        threads=settings.llm_threads,
        max_answer_tokens=settings.llm_max_tokens,
        refusal_probability=settings.llm_refusal_probability,
        base_url=settings.openai_base_url,
        model=settings.openai_model,
        api_key=settings.openai_api_key,
        timeout_s=settings.openai_timeout_s,
        retries=settings.openai_retries,
        context_words=settings.answer_context_words,
    )
    return make_generator(name or settings.generator, config, embedder)


def build_assistant(
    settings: Settings,
    retriever: HybridRetriever,
    embedder: Embedder,
    generator: Generator,
) -> Assistant:
    options = AssistantOptions(
        k=settings.answer_sources,
        neighbors=settings.answer_neighbors,
        refusal_threshold=settings.refusal_threshold,
        check=CheckOptions(threshold=settings.citation_threshold),
    )
    return Assistant(
        retriever,
        generator,
        embedder,
        today=settings.today_date,
        options=options,
    )
