"""Retrieval quality and speed, in one run on one machine state (`python -m evals.bench_retrieval`).

1. contoso_hr (../shared/bench/contoso_hr, external): its PDFs ingested by our Ingester into a
   fresh embedded store; each question of `qa/dev.jsonl` retrieved top-10 by an administrator in
   each mode (hybrid, dense, keyword). A chunk is a hit when it comes from the reference file and
   its pages [page, page_end] meet [N-1, N+1]. hit@k, MRR@10, per file, and each retrieve()'s
   wall time (model loaded, index warm). Beside it, the plain LlamaIndex baseline of
   ../shared/DESIGN.md ("Benchmarks") on the same questions. For the unanswerable questions
   (`qa/dev_dontknows.jsonl`), the distribution of the best dense score against the answerable
   ones: the material for a refusal threshold.
2. The golden set (evals/datasets/golden over corpus/): each question retrieved top-10 as its
   asker (`Principal.of(*principal_groups)`); document-level hit@k and MRR for the answerable
   ones, per question type; for every question, forbidden documents among the hits (leaks, must
   be 0); the best dense score of the unanswerable ones.
3. The look-alike set (evals/datasets/lookalike, built by scripts/build_lookalike.py): 12
   quarterly reports with the same cover page and headings, differing only in organisation,
   period and figures; each question (naming the organisation and period) retrieved top-10 as
   an administrator in each mode. Document-level hit@5 (any expected document among the
   documents of the top-5 hits) and all@5 (every expected document among them), beside the
   plain LlamaIndex baseline on the same PDFs. The filings set (evals/datasets/lookalike-filings)
   is the same reports and questions as regulatory filings: legal cover text, shared "Item"
   headings and file names that are accession numbers, so only the text tells them apart.
4. A synthetic store of 100,000 chunks (random unit vectors, Zipf-distributed pseudo-words,
   metadata built by the product's own record functions): write time, keyword index build time
   and memory, and hybrid query latency with no filter, a department filter, and a one-group
   principal.

`--only lookalike` (repeatable) runs the named sections alone; `--chunk-context on` embeds and
keyword-indexes each chunk with its context line (ingest.chunking.ChunkingOptions.context_line,
and index.keyword.KeywordIndex's context_line, both off by default), `embedding` or `keyword`
in one of them, to measure what it does.

The stores are filled first with torch on all cores, as `kb ingest` runs; the queries then
use the embedder `kb serve` builds (torch on KB_SERVE_THREADS threads, process-wide), and the
retrievers `api/assembly.py` builds from the settings. Latencies are wall times of single
queries on a possibly shared two-core machine: the load average at each phase is kept with the
figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, cast

import numpy as np

from api.assembly import (
    build_embedder,
    build_store,
    chunking_options,
    metadata_options,
    retrieval_options,
)
from api.settings import Settings
from evals.answers import PageRef, parse_reference
from evals.benchkit import (
    CONTOSO,
    REPO,
    Column,
    LlamaBaseline,
    Stopwatch,
    TimedProxy,
    build_llama_baseline,
    clock,
    configure_runtime,
    format_table,
    latency_ms,
    percentiles,
    phase,
    prepare_roots,
    read_jsonl,
    stamped_run,
    verdict,
    write_json,
)
from evals.golden import GoldenQuestion, load_golden
from evals.synthetic_store import (
    FILTER_KINDS,
    SyntheticSpec,
    Vocabulary,
    build_keyword,
    write_synthetic,
)
from index.embedding import Embedder, packaged_model_path
from index.filters import ADMIN, Principal, SearchFilters
from index.hits import Hit
from index.hybrid import HybridRetriever, Mode, RetrievalOptions
from index.keyword import KeywordIndex, Tokenizer
from index.store import ChromaStore
from ingest.sync import Ingester, IngestReport

CORPUS = REPO / "corpus"
LOOKALIKE = REPO / "evals" / "datasets" / "lookalike"
FILINGS = REPO / "evals" / "datasets" / "lookalike-filings"
# The document-level sets: the same reports as plain reports and as filings
# (scripts/build_lookalike.py).
DOCUMENT_SETS = {"lookalike": LOOKALIKE, "filings": FILINGS}
SECTIONS = ("contoso", "golden", "lookalike", "filings", "synthetic")
DEFAULT_OUT = REPO / "data" / "bench" / "retrieval.json"
GOLDEN_TODAY = "2026-11-28"  # the golden set's stale labels hold as of this day
K = 10
HIT_AT = (1, 2, 5, 10)
MODES: tuple[Mode, ...] = ("hybrid", "dense", "keyword")
SCORE_QS = (10, 50, 90)
TARGETS = {
    "contoso_hit@5": 0.95,
    "contoso_mrr": 0.85,
    "contoso_p50_ms": 50.0,
    "synthetic_hybrid_p50_ms": 150.0,
}
# The stages of one retrieve() seen through proxies; the rest is BM25, fusion and collapsing.
STORE_CALLS = ("query", "get_chunks", "generation")


# -- retrieval, timed -------------------------------------------------------------------------


@dataclass
class Retrieved:
    hits: list[Hit]
    seconds: float


class AclDrops(logging.Handler):
    """Counts the retriever's defence-in-depth drops: chunks a retrieval path returned for a
    `where` clause that `index.filters.matches` rejects (index.hybrid logs each one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.context = ""
        self.drops: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "not allowed" in str(record.msg) and record.args:
            chunk = cast(tuple[Any, ...], record.args)[0]
            self.drops.append({"chunk": str(chunk), "query": self.context})

    def take(self, store: ChromaStore) -> list[dict[str, Any]]:
        """The drops since the last call, with the chunk's stored access fields."""
        drops, self.drops = self.drops, []
        rows = store.get_chunks([d["chunk"] for d in drops])
        for drop in drops:
            md = rows.get(drop["chunk"], ("", {}))[1]
            drop["stored"] = {k: md.get(k) for k in ("status", "access", "department")}
        return drops


ACL_DROPS = AclDrops()


@dataclass
class Retrievers:
    """One store's retrievers by mode, each with a stopwatch on its store and embedder calls."""

    by_mode: dict[Mode, HybridRetriever]
    watches: dict[Mode, Stopwatch]
    today: dt.date

    def retrieve(
        self,
        mode: Mode,
        query: str,
        principal: Principal,
        filters: SearchFilters | None = None,
    ) -> Retrieved:
        ACL_DROPS.context = f"{mode} {principal} {filters}"
        retriever = self.by_mode[mode]
        start = time.perf_counter()
        hits = retriever.retrieve(query, K, today=self.today, filters=filters, principal=principal)
        return Retrieved(hits, time.perf_counter() - start)

    def retrieve_all(
        self, queries: Sequence[tuple[str, Principal]], modes: Sequence[Mode] = MODES
    ) -> dict[Mode, list[Retrieved]]:
        """Every query in every mode, the modes interleaved query by query so that a change in
        the machine's load weighs on all of them alike."""
        runs: dict[Mode, list[Retrieved]] = {mode: [] for mode in modes}
        for query, principal in queries:
            for mode in modes:
                runs[mode].append(self.retrieve(mode, query, principal))
        return runs

    def stages_ms(self, mode: Mode, runs: Sequence[Retrieved]) -> dict[str, float]:
        """Mean milliseconds per query in each proxied call, and the rest of retrieve() (BM25,
        fusion, duplicate collapsing); the mode's stopwatch starts again from zero."""
        watch = self.watches[mode]
        n = max(len(runs), 1)
        out = {name: round(span.wall * 1000 / n, 2) for name, span in watch.spans.items()}
        total = sum(r.seconds for r in runs) * 1000 / n
        out["rest"] = round(total - sum(out.values()), 2)
        watch.spans.clear()
        watch.calls.clear()
        return out


def timed_parts(store: ChromaStore, embedder: Embedder, watch: Stopwatch) -> tuple[Any, Any]:
    return TimedProxy(store, watch, STORE_CALLS), TimedProxy(embedder, watch, ("embed",))


def settings_for(data_dir: Path) -> Settings:
    """The product's settings (defaults and KB_* variables, no .env file), data under data_dir."""
    return Settings(data_dir=data_dir, _env_file=None)


@dataclass(frozen=True)
class Variant:
    """What the benchmark varies beyond the settings: the chunk context line in what is
    embedded, and in what is keyword-indexed."""

    embed_context: bool = False
    keyword_context: bool = False  # the product's defaults

    @classmethod
    def named(cls, name: str) -> Variant:
        """`--chunk-context`: off, on (both), embedding or keyword (one of them)."""
        both = name == "on"
        return cls(both or name == "embedding", both or name == "keyword")

    def ingester(self, settings: Settings, store: ChromaStore, embedder: Embedder) -> Ingester:
        """api.assembly.build_ingester, with the variant's chunking."""
        chunking = dataclasses.replace(chunking_options(settings), context_line=self.embed_context)
        return Ingester(store, embedder, chunking=chunking, metadata=metadata_options(settings))

    def retriever(self, settings: Settings, store: Any, embedder: Any) -> HybridRetriever:
        """api.assembly.build_retriever, with the variant's keyword index."""
        keyword = KeywordIndex(
            store, settings.keyword_index_path, Tokenizer(), context_line=self.keyword_context
        )
        return HybridRetriever(store, embedder, keyword, retrieval_options(settings))


def product_retrievers(
    settings: Settings,
    store: ChromaStore,
    embedder: Embedder,
    variant: Variant,
) -> Retrievers:
    """Built the way the app builds them, one per mode, warmed."""
    by_mode: dict[Mode, HybridRetriever] = {}
    watches: dict[Mode, Stopwatch] = {}
    for mode in MODES:
        mode_settings = settings.model_copy(update={"retrieval_mode": mode})
        watches[mode] = Stopwatch()
        parts = timed_parts(store, embedder, watches[mode])
        by_mode[mode] = variant.retriever(mode_settings, *parts)
        by_mode[mode].warm()
        watches[mode].spans.clear()
        watches[mode].calls.clear()
    return Retrievers(by_mode, watches, settings.today_date())


def retrieval_settings(settings: Settings) -> dict[str, Any]:
    keys = ("retrieval_candidates", "rrf_k", "dense_weight", "keyword_weight")
    chunking = ("chunk_max_tokens", "chunk_overlap_tokens", "chunk_min_tokens")
    return {k: getattr(settings, k) for k in (*keys, *chunking)}


# -- ranking metrics --------------------------------------------------------------------------


def first_rank(flags: Sequence[bool]) -> int | None:
    """1-based rank of the first True, or None."""
    return next((i for i, flag in enumerate(flags, start=1) if flag), None)


def rank_metrics(ranks: Sequence[int | None]) -> dict[str, Any]:
    """hit@k for each k of HIT_AT and MRR@K over the first-hit ranks of some questions."""
    n = len(ranks)
    if not n:
        return {"n": 0}
    out: dict[str, Any] = {"n": n}
    for k in HIT_AT:
        out[f"hit@{k}"] = round(sum(r is not None and r <= k for r in ranks) / n, 3)
    out["mrr"] = round(sum(1 / r for r in ranks if r is not None and r <= K) / n, 3)
    return out


def grouped_metrics(keys: Sequence[str], ranks: Sequence[int | None]) -> dict[str, Any]:
    groups: dict[str, list[int | None]] = defaultdict(list)
    for key, rank in zip(keys, ranks, strict=True):
        groups[key].append(rank)
    return {key: rank_metrics(groups[key]) for key in sorted(groups)}


def score_distribution(scores: Sequence[float | None]) -> dict[str, Any]:
    present = [s for s in scores if s is not None]
    return {"n": len(scores), "missing": len(scores) - len(present)} | percentiles(
        present, SCORE_QS
    )


def separability(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(an answerable question's score > an unanswerable one's), ties counting half (AUC)."""
    if not positives or not negatives:
        return None
    pos = np.asarray(positives)[:, None]
    neg = np.asarray(negatives)[None, :]
    return round(float(np.mean((pos > neg) + 0.5 * (pos == neg))), 3)


def top_dense(hits: Sequence[Hit]) -> float | None:
    return hits[0].dense_score if hits else None


# -- contoso_hr -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContosoQuestion:
    number: int  # line in qa/dev.jsonl, 1-based
    question: str
    ref: PageRef


def load_contoso(qa_dir: Path) -> tuple[list[ContosoQuestion], list[str]]:
    questions = []
    for number, row in enumerate(read_jsonl(qa_dir / "dev.jsonl"), start=1):
        try:
            ref = parse_reference(row["truth"])
        except ValueError as exc:
            raise ValueError(f"dev.jsonl line {number}: {exc}") from exc
        questions.append(ContosoQuestion(number, row["question"], ref))
    dontknows = [row["question"] for row in read_jsonl(qa_dir / "dev_dontknows.jsonl")]
    return questions, dontknows


def hit_file(hit: Hit) -> str:
    return PurePosixPath(hit.path).name


def covers(hit: Hit, ref: PageRef) -> bool:
    """The chunk comes from the reference file and one of its pages [page, page_end] is
    within the reference tolerance of the reference page."""
    if hit.page is None:
        return False
    last = hit.page_end if hit.page_end is not None else hit.page
    return any(ref.matches(hit.path, page) for page in range(hit.page, last + 1))


def contoso_rank(hits: Sequence[Hit], ref: PageRef) -> int | None:
    return first_rank([covers(h, ref) for h in hits])


def pages_of(hit: Hit) -> str:
    if hit.page is None:
        return f"{hit_file(hit)}"
    end = f"-{hit.page_end}" if hit.page_end not in (None, hit.page) else ""
    return f"{hit_file(hit)}#{hit.page}{end}"


def miss_note(question: ContosoQuestion, hits: Sequence[Hit], rank: int | None) -> dict[str, Any]:
    """A question the retriever missed at 5, by number (no question text): what it returned."""
    return {
        "line": question.number,
        "reference": f"{question.ref.file}#{question.ref.page}",
        "rank": rank,
        "top5": [pages_of(h) for h in hits[:5]],
    }


def contoso_mode(
    retrievers: Retrievers,
    mode: Mode,
    questions: Sequence[ContosoQuestion],
    runs: Sequence[Retrieved],
) -> dict[str, Any]:
    ranks = [contoso_rank(r.hits, q.ref) for q, r in zip(questions, runs, strict=True)]
    result: dict[str, Any] = {
        **rank_metrics(ranks),
        "latency": latency_ms([r.seconds for r in runs]),
        "stages_ms_per_query": retrievers.stages_ms(mode, runs),
        "per_file": grouped_metrics([q.ref.file for q in questions], ranks),
        "ranks_by_line": ranks,
        "missed_at_5": [
            miss_note(q, r.hits, rank)
            for q, r, rank in zip(questions, runs, ranks, strict=True)
            if rank is None or rank > 5
        ],
        "top1_dense": [top_dense(r.hits) for r in runs],
    }
    return result


def ingest_summary(report: IngestReport, store: ChromaStore, seconds: float) -> dict[str, Any]:
    per_file: dict[str, int] = defaultdict(int)
    for _, _, md in zip(*store.all_chunks(), strict=True):
        per_file[PurePosixPath(str(md.get("path", ""))).name] += 1
    return {
        "seconds": round(seconds, 1),
        "documents": len(report.added) + len(report.updated),
        "failed": [f.to_json() for f in report.failed],
        "chunks": store.count_chunks(),
        "chunks_per_file": dict(sorted(per_file.items())),
    }


def ingest(settings: Settings, embedder: Embedder, root: Path, variant: Variant) -> Ingested:
    store = build_store(settings)
    with clock() as elapsed:
        report = variant.ingester(settings, store, embedder).sync(root)
    return Ingested(settings, store, ingest_summary(report, store, elapsed().wall), variant)


def dontknow_scores(retrievers: Retrievers, questions: Sequence[str]) -> list[float | None]:
    return [top_dense(retrievers.retrieve("dense", q, ADMIN).hits) for q in questions]


def refusal_material(
    answerable: Sequence[float | None], unanswerable: Sequence[float | None]
) -> dict[str, Any]:
    pos = [s for s in answerable if s is not None]
    neg = [s for s in unanswerable if s is not None]
    return {
        "signal": "dense-mode top-1 cosine similarity",
        "answerable": score_distribution(answerable),
        "unanswerable": score_distribution(unanswerable),
        "auc": separability(pos, neg),
    }


@dataclass
class Ingested:
    """A fresh store filled by our Ingester, and the settings it was built with."""

    settings: Settings
    store: ChromaStore
    summary: dict[str, Any]
    variant: Variant


def run_contoso(ingested: Ingested, embedder: Embedder, loads: dict[str, float]) -> dict[str, Any]:
    questions, dontknows = load_contoso(CONTOSO / "qa")
    settings, store = ingested.settings, ingested.store
    retrievers = product_retrievers(settings, store, embedder, ingested.variant)
    phase("contoso: retrieval, the three modes interleaved", loads)
    runs = retrievers.retrieve_all([(q.question, ADMIN) for q in questions])
    modes = {mode: contoso_mode(retrievers, mode, questions, runs[mode]) for mode in MODES}
    unanswerable = dontknow_scores(retrievers, dontknows)
    answerable = modes["dense"].pop("top1_dense")
    for mode in MODES:
        modes[mode].pop("top1_dense", None)
    phase("contoso: query embedding, all cores vs 1 thread", loads)
    return {
        "questions": len(questions),
        "unanswerable_questions": len(dontknows),
        "settings": retrieval_settings(settings),
        "ingest": ingested.summary,
        "modes": modes,
        "refusal_material": refusal_material(answerable, unanswerable),
        "query_embedding": embedding_threads_probe(embedder, [q.question for q in questions]),
        "acl_drops": ACL_DROPS.take(store),
    }


def embedding_threads_probe(embedder: Embedder, queries: Sequence[str]) -> dict[str, Any]:
    """embed([query]) alone, on all cores and on one torch thread, alternating query by
    query; torch's setting (process-wide) is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    seconds: dict[int, list[float]] = {os.cpu_count() or 1: [], 1: []}
    try:
        for query in queries:
            for threads, found in seconds.items():
                torch.set_num_threads(threads)
                start = time.perf_counter()
                embedder.embed([query])
                found.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return {f"torch_threads_{n}": latency_ms(s) for n, s in seconds.items()}


# -- contoso_hr, plain LlamaIndex -------------------------------------------------------------


def node_rank(nodes: Sequence[Any], ref: PageRef) -> int | None:
    flags = []
    for scored in nodes:
        md = scored.node.metadata
        page = md.get("page")
        flags.append(ref.matches(str(md.get("file_name", "")), page))
    return first_rank(flags)


def run_llama_contoso(baseline: LlamaBaseline) -> dict[str, Any]:
    retriever = baseline.index.as_retriever(similarity_top_k=K)
    retriever.retrieve("warm up the model")
    questions, _ = load_contoso(CONTOSO / "qa")
    ranks: list[int | None] = []
    seconds: list[float] = []
    for q in questions:
        start = time.perf_counter()
        nodes = retriever.retrieve(q.question)
        seconds.append(time.perf_counter() - start)
        ranks.append(node_rank(nodes, q.ref))
    return {
        "pipeline": "pypdf pages, SentenceSplitter(512, 20), HuggingFaceEmbedding (same MiniLM), "
        "ChromaVectorStore, top-10 vector retrieval",
        "nodes": len(baseline.nodes),
        "build_seconds": round(baseline.total.wall, 1),
        **rank_metrics(ranks),
        "latency": latency_ms(seconds),
        "per_file": grouped_metrics([q.ref.file for q in questions], ranks),
    }


# -- golden set -------------------------------------------------------------------------------


def golden_rank(hits: Sequence[Hit], question: GoldenQuestion) -> int | None:
    return first_rank([h.doc_id in question.expected_docs for h in hits])


def golden_mode(
    retrievers: Retrievers,
    mode: Mode,
    questions: Sequence[GoldenQuestion],
    runs: Sequence[Retrieved],
) -> dict[str, Any]:
    ranks: list[int | None] = []
    types: list[str] = []
    leaks: list[dict[str, Any]] = []
    missed: list[dict[str, Any]] = []
    for q, run in zip(questions, runs, strict=True):
        leaked = sorted({h.doc_id for h in run.hits} & set(q.forbidden_docs))
        if leaked:
            leaks.append({"id": q.id, "type": q.type.value, "leaked": leaked})
        if not q.answerable:
            continue
        rank = golden_rank(run.hits, q)
        ranks.append(rank)
        types.append(q.type.value)
        if rank is None or rank > 5:
            top5 = [h.doc_id for h in run.hits[:5]]
            missed.append({"id": q.id, "type": q.type.value, "rank": rank, "top5": top5})
    return {
        **rank_metrics(ranks),
        "per_type": grouped_metrics(types, ranks),
        "leaks": len(leaks),
        "leaked": leaks,
        "checked_for_leaks": len(questions),
        "missed_at_5": missed,
        "ranks_by_id": {
            q.id: r for q, r in zip((q for q in questions if q.answerable), ranks, strict=True)
        },
        "latency": latency_ms([r.seconds for r in runs]),
        "stages_ms_per_query": retrievers.stages_ms(mode, runs),
    }


def run_golden(ingested: Ingested, embedder: Embedder, loads: dict[str, float]) -> dict[str, Any]:
    questions = load_golden()
    store = ingested.store
    retrievers = product_retrievers(ingested.settings, store, embedder, ingested.variant)
    phase("golden: retrieval, the three modes interleaved", loads)
    runs = retrievers.retrieve_all(
        [(q.question, Principal.of(*q.principal_groups)) for q in questions]
    )
    modes = {mode: golden_mode(retrievers, mode, questions, runs[mode]) for mode in MODES}
    top1 = [top_dense(r.hits) for r in runs["dense"]]
    answerable = [s for q, s in zip(questions, top1, strict=True) if q.answerable]
    unanswerable = [s for q, s in zip(questions, top1, strict=True) if not q.answerable]
    by_type: dict[str, list[float | None]] = defaultdict(list)
    for q, s in zip(questions, top1, strict=True):
        if not q.answerable:
            by_type[q.type.value].append(s)
    material = refusal_material(answerable, unanswerable)
    material["unanswerable_by_type"] = {t: score_distribution(v) for t, v in by_type.items()}
    return {
        "questions": len(questions),
        "answerable": len(answerable),
        "ingest": {k: v for k, v in ingested.summary.items() if k != "chunks_per_file"},
        "modes": modes,
        "refusal_material": material,
        "acl_drops": ACL_DROPS.take(store),
    }


# -- look-alike set ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LookalikeQuestion:
    id: str
    question: str
    expected_docs: tuple[str, ...]  # document ids = file stems


def load_lookalike(folder: Path = LOOKALIKE) -> list[LookalikeQuestion]:
    return [
        LookalikeQuestion(row["id"], row["question"], tuple(row["expected_docs"]))
        for row in read_jsonl(folder / "questions.jsonl")
    ]


def document_hits(
    found: Sequence[Sequence[str]], questions: Sequence[LookalikeQuestion]
) -> dict[str, Any]:
    """found[i]: the document ids of question i's top-5 hits, in order. hit@5: any expected
    document among them; all@5: every expected document among them."""
    anys = [
        bool(set(q.expected_docs) & set(docs)) for q, docs in zip(questions, found, strict=True)
    ]
    alls = [set(q.expected_docs) <= set(docs) for q, docs in zip(questions, found, strict=True)]
    several = [a for q, a in zip(questions, alls, strict=True) if len(q.expected_docs) > 1]
    n = len(questions)
    return {
        "n": n,
        "doc_hit@5": round(sum(anys) / n, 3) if n else None,
        "doc_all@5": round(sum(alls) / n, 3) if n else None,
        "several_expected": len(several),
        "several_all@5": round(sum(several) / len(several), 3) if several else None,
        "missed_at_5": [
            {"id": q.id, "expected": list(q.expected_docs), "top5": list(docs)}
            for q, docs, ok in zip(questions, found, alls, strict=True)
            if not ok
        ],
    }


def run_lookalike(
    name: str, ingested: Ingested, embedder: Embedder, loads: dict[str, float]
) -> dict[str, Any]:
    questions = load_lookalike(DOCUMENT_SETS[name])
    retrievers = product_retrievers(ingested.settings, ingested.store, embedder, ingested.variant)
    phase(f"{name}: retrieval, the three modes interleaved", loads)
    runs = retrievers.retrieve_all([(q.question, ADMIN) for q in questions])
    modes = {}
    for mode in MODES:
        found = [[h.doc_id for h in r.hits[:5]] for r in runs[mode]]
        modes[mode] = {
            **document_hits(found, questions),
            "latency": latency_ms([r.seconds for r in runs[mode]]),
        }
    titles = {h.doc_id: h.title for r in runs["dense"] for h in r.hits}
    return {
        "questions": len(questions),
        "context_line": dataclasses.asdict(ingested.variant),
        "ingest": {k: v for k, v in ingested.summary.items() if k != "chunks_per_file"},
        "modes": modes,
        "titles": dict(sorted(titles.items())),
        "acl_drops": ACL_DROPS.take(ingested.store),
    }


def run_llama_lookalike(name: str, baseline: LlamaBaseline) -> dict[str, Any]:
    retriever = baseline.index.as_retriever(similarity_top_k=K)
    retriever.retrieve("warm up the model")
    questions = load_lookalike(DOCUMENT_SETS[name])
    found: list[list[str]] = []
    seconds: list[float] = []
    for q in questions:
        start = time.perf_counter()
        nodes = retriever.retrieve(q.question)
        seconds.append(time.perf_counter() - start)
        names = [str(n.node.metadata.get("file_name", "")) for n in nodes[:5]]
        found.append([PurePosixPath(name).stem for name in names])
    return {
        "pipeline": "pypdf pages, SentenceSplitter(512, 20), HuggingFaceEmbedding (same MiniLM), "
        "ChromaVectorStore, top-10 vector retrieval (file name and page embedded with each node)",
        "nodes": len(baseline.nodes),
        "build_seconds": round(baseline.total.wall, 1),
        **document_hits(found, questions),
        "latency": latency_ms(seconds),
    }


# -- synthetic store --------------------------------------------------------------------------


def synthetic_queries(
    retrievers: Retrievers, rng: np.random.Generator, vocab: Vocabulary, spec: SyntheticSpec
) -> tuple[dict[str, Any], list[Retrieved]]:
    """Hybrid queries, the filter kinds in turn; latency per kind, over all queries and over
    those whose filter value came before (the keyword index caches one mask per filter)."""
    kinds = list(FILTER_KINDS)
    runs: dict[str, list[Retrieved]] = defaultdict(list)
    warm: dict[str, list[float]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for n in range(spec.queries):
        kind = kinds[n % len(kinds)]
        value, principal, filters = FILTER_KINDS[kind](rng)
        run = retrievers.retrieve("hybrid", vocab.query(rng), principal, filters)
        runs[kind].append(run)
        if (kind, value) in seen:
            warm[kind].append(run.seconds)
        seen.add((kind, value))
    latency = {
        kind: {
            "all": latency_ms([r.seconds for r in runs[kind]]),
            "filter_seen_before": latency_ms(warm[kind]),
        }
        for kind in kinds
    }
    return latency, [r for kind in kinds for r in runs[kind]]


def synthetic_retrievers(
    store: ChromaStore, embedder: Embedder, keyword: KeywordIndex
) -> Retrievers:
    """A hybrid retriever with the default options over the synthetic store, warmed."""
    watch = Stopwatch()
    timed_store, timed_embedder = timed_parts(store, embedder, watch)
    timed_keyword = cast(KeywordIndex, TimedProxy(keyword, watch, ("search",)))
    retriever = HybridRetriever(timed_store, timed_embedder, timed_keyword, RetrievalOptions())
    retriever.warm()
    watch.spans.clear()
    watch.calls.clear()
    today = dt.date.fromisoformat(os.environ.get("KB_TODAY", GOLDEN_TODAY))
    return Retrievers({"hybrid": retriever}, {"hybrid": watch}, today)


def run_synthetic(
    workdir: Path, embedder: Embedder, chunks: int, loads: dict[str, float]
) -> dict[str, Any]:
    spec = SyntheticSpec(chunks=chunks, dimension=embedder.dimension)
    rng = np.random.default_rng(spec.seed)
    vocab = Vocabulary.make(rng, spec.vocabulary, spec.zipf_exponent)
    store = ChromaStore.open(
        path=workdir / "synthetic", chunks_name="syn_chunks", documents_name="syn_docs"
    )
    phase(f"synthetic: write {chunks} chunks", loads)
    written = write_synthetic(store, rng, vocab, spec)
    phase("synthetic: keyword index", loads)
    keyword, build = build_keyword(store, workdir / "synthetic-bm25")
    retrievers = synthetic_retrievers(store, embedder, keyword)
    phase("synthetic: hybrid queries", loads)
    latency, runs = synthetic_queries(retrievers, rng, vocab, spec)
    return {
        "spec": dataclasses.asdict(spec),
        "write": written,
        "keyword_build": build,
        "hybrid_latency": latency,
        "stages_ms_per_query": retrievers.stages_ms("hybrid", runs),
        "acl_drops": ACL_DROPS.take(store),
    }


# -- targets and output -----------------------------------------------------------------------


def targets(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    contoso = result.get("contoso")
    if contoso:
        hybrid = contoso["modes"]["hybrid"]
        p50 = hybrid["latency"]["p50_ms"]
        out["contoso_hit@5"] = {"value": hybrid["hit@5"], "target": ">= 0.95"}
        out["contoso_mrr"] = {"value": hybrid["mrr"], "target": ">= 0.85"}
        out["contoso_p50_ms"] = {"value": p50, "target": "< 50"}
        out["contoso_hit@5"]["met"] = hybrid["hit@5"] >= TARGETS["contoso_hit@5"]
        out["contoso_mrr"]["met"] = hybrid["mrr"] >= TARGETS["contoso_mrr"]
        out["contoso_p50_ms"]["met"] = p50 < TARGETS["contoso_p50_ms"]
    golden = result.get("golden")
    if golden:
        leaks = sum(m["leaks"] for m in golden["modes"].values())
        out["golden_leaks"] = {"value": leaks, "target": "== 0", "met": leaks == 0}
    synthetic = result.get("synthetic")
    if synthetic:
        p50 = max(v["all"]["p50_ms"] for v in synthetic["hybrid_latency"].values())
        limit = TARGETS["synthetic_hybrid_p50_ms"]
        out["synthetic_hybrid_p50_ms"] = {"value": p50, "target": "< 150", "met": p50 < limit}
        out["synthetic_hybrid_p50_ms"]["note"] = "worst filter kind"
    return out


METRIC_COLUMNS = ("hit@1", "hit@2", "hit@5", "hit@10", "mrr")


def metric_cells(row: dict[str, Any]) -> list[Any]:
    return [row.get(key) for key in METRIC_COLUMNS]


def contoso_lines(contoso: dict[str, Any], llama: dict[str, Any]) -> list[str]:
    columns = [Column("contoso_hr (131 q)", 24, "<"), *(Column(c, 8) for c in METRIC_COLUMNS)]
    columns += [Column("p50 ms", 9), Column("p95 ms", 9)]
    rows = []
    for mode, row in contoso["modes"].items():
        lat = row["latency"]
        rows.append([f"ours {mode}", *metric_cells(row), lat["p50_ms"], lat["p95_ms"]])
    if llama:
        lat = llama["latency"]
        rows.append(["plain llamaindex", *metric_cells(llama), lat["p50_ms"], lat["p95_ms"]])
    rows.append(["target (hybrid)", "", "", ">=0.95", "", ">=0.85", "<50", ""])
    return format_table(columns, rows)


def per_file_lines(contoso: dict[str, Any], llama: dict[str, Any]) -> list[str]:
    columns = [Column("reference file", 44, "<"), Column("n", 4), Column("hit@1", 7)]
    columns += [Column("hit@5", 7), Column("hit@10", 7), Column("MRR", 7), Column("llama@5", 8)]
    rows = []
    for file, row in contoso["modes"]["hybrid"]["per_file"].items():
        base = llama.get("per_file", {}).get(file, {}) if llama else {}
        cells = [row["hit@1"], row["hit@5"], row["hit@10"], row["mrr"], base.get("hit@5")]
        rows.append([file, row["n"], *cells])
    return format_table(columns, rows)


def distribution_cells(dist: dict[str, Any]) -> str:
    return " / ".join(f"{dist[f'p{q}']}" for q in SCORE_QS)


def refusal_lines(name: str, material: dict[str, Any]) -> list[str]:
    pos, neg = material["answerable"], material["unanswerable"]
    return [
        f"{name}: top-1 dense score p10/p50/p90: answerable ({pos['n']}) "
        f"{distribution_cells(pos)}; unanswerable ({neg['n']}) {distribution_cells(neg)}; "
        f"AUC {material['auc']}"
    ]


def golden_lines(golden: dict[str, Any]) -> list[str]:
    title = f"golden ({golden['answerable']}/{golden['questions']} q)"
    columns = [Column(title, 24, "<"), *(Column(c, 8) for c in METRIC_COLUMNS)]
    columns += [Column("leaks", 7), Column("p50 ms", 9)]
    rows = [
        [mode, *metric_cells(row), row["leaks"], row["latency"]["p50_ms"]]
        for mode, row in golden["modes"].items()
    ]
    lines = format_table(columns, rows)
    type_columns = [Column("golden, per type", 24, "<"), Column("n", 4)]
    type_columns += [Column(f"{m[:6]} @5", 10) for m in ("hybrid", "dense", "keyword")]
    type_columns += [Column("hybrid MRR", 11)]
    per_type = golden["modes"]["hybrid"]["per_type"]
    type_rows = [
        [
            qtype,
            row["n"],
            *(golden["modes"][m]["per_type"][qtype]["hit@5"] for m in MODES),
            row["mrr"],
        ]
        for qtype, row in per_type.items()
    ]
    return [*lines, "", *format_table(type_columns, type_rows)]


LOOKALIKE_COLUMNS = ("doc_hit@5", "doc_all@5", "several_all@5")


def lookalike_lines(name: str, lookalike: dict[str, Any], llama: dict[str, Any]) -> list[str]:
    on = [k.split("_")[0] for k, v in lookalike["context_line"].items() if v]
    context = "+".join(on) or "off"
    title = f"{name} ({lookalike['questions']} q, context {context})"
    columns = [Column(title, 34, "<"), *(Column(c, 15) for c in LOOKALIKE_COLUMNS)]
    columns.append(Column("p50 ms", 9))
    rows = [
        [f"ours {mode}", *(row[c] for c in LOOKALIKE_COLUMNS), row["latency"]["p50_ms"]]
        for mode, row in lookalike["modes"].items()
    ]
    if llama:
        cells = [llama[c] for c in LOOKALIKE_COLUMNS]
        rows.append(["plain llamaindex", *cells, llama["latency"]["p50_ms"]])
    return format_table(columns, rows)


def synthetic_lines(synthetic: dict[str, Any]) -> list[str]:
    build, write = synthetic["keyword_build"], synthetic["write"]
    columns = [Column(f"synthetic {write['chunks']} chunks", 26, "<"), Column("n", 5)]
    columns += [Column("p50 ms", 9), Column("p95 ms", 9), Column("max ms", 9)]
    columns += [Column("warm p50", 10), Column("warm p95", 10)]
    rows = []
    for kind, row in synthetic["hybrid_latency"].items():
        lat, warm = row["all"], row["filter_seen_before"]
        cells = [lat["p50_ms"], lat["p95_ms"], lat["max_ms"], warm["p50_ms"], warm["p95_ms"]]
        rows.append([f"hybrid, filter {kind}", lat["n"], *cells])
    rows.append(["target", "", "<150", "", "", "", ""])
    memory = build["memory"]
    return [
        *format_table(columns, rows),
        f"write {write['upsert_chunks']['seconds']} s in batches of {write['batch']}; keyword "
        f"index build {build['seconds']} s (read {build['read_chunks_seconds']}, tokenize "
        f"{build['tokenize_seconds']}, index+save {build['index_and_save_seconds']}), reload "
        f"{build['reload_from_disk_seconds']} s; peak RSS growth {memory['peak_growth_mb']} MB, "
        f"retained {round(memory['rss_after_mb'] - memory['rss_before_mb'], 1)} MB",
        f"per query (ms): {synthetic['stages_ms_per_query']}",
    ]


def stage_lines(name: str, modes: dict[str, Any]) -> list[str]:
    return [
        f"{name} {mode}, mean ms per query: {row['stages_ms_per_query']}"
        for mode, row in modes.items()
    ]


def embedding_line(probe: dict[str, Any]) -> str:
    cells = [
        f"{k.replace('torch_', '')} p50 {v['p50_ms']} p95 {v['p95_ms']}" for k, v in probe.items()
    ]
    return f"query embedding alone (ms): {'; '.join(cells)}"


def target_lines(found: dict[str, Any]) -> list[str]:
    return [
        f"target {name}: {row['value']} (want {row['target']}): {verdict(row['met'])}"
        for name, row in found.items()
    ]


def print_report(result: dict[str, Any]) -> None:
    lines: list[str] = []
    contoso, llama = result.get("contoso"), result.get("llamaindex") or {}
    if contoso:
        lines += ["", *contoso_lines(contoso, llama), "", *per_file_lines(contoso, llama)]
        lines += refusal_lines("contoso", contoso["refusal_material"])
        lines += stage_lines("contoso", contoso["modes"])
        lines.append(embedding_line(contoso["query_embedding"]))
    if result.get("golden"):
        lines += ["", *golden_lines(result["golden"])]
        lines += refusal_lines("golden", result["golden"]["refusal_material"])
        lines += stage_lines("golden", result["golden"]["modes"])
    for name in DOCUMENT_SETS:
        if result.get(name):
            llama_set = result.get(f"llamaindex_{name}") or {}
            lines += ["", *lookalike_lines(name, result[name], llama_set)]
    if result.get("synthetic"):
        lines += ["", *synthetic_lines(result["synthetic"])]
    drops = {
        k: len(v["acl_drops"])
        for k, v in result.items()
        if isinstance(v, dict) and "acl_drops" in v
    }
    lines.append(f"hits dropped by the retriever's own where check (Chroma disagreed): {drops}")
    lines += ["", *target_lines(result["targets"])]
    lines.append(f"load average (1 min) at each phase: {result['load_1min_at_phase_start']}")
    print("\n".join(lines))


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_retrieval", description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=None, help=f"JSON results file (default: {DEFAULT_OUT.name})"
    )
    parser.add_argument("--skip-synthetic", action="store_true", help="skip the 100k store")
    parser.add_argument("--skip-llamaindex", action="store_true", help="skip the baseline")
    parser.add_argument(
        "--synthetic-chunks", type=int, default=100_000, help="size of the synthetic store"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable; default: all)",
    )
    parser.add_argument(
        "--chunk-context",
        choices=("off", "on", "embedding", "keyword"),
        default="off",
        help="the chunk context line in what is embedded and keyword-indexed: neither (the "
        "product's default), both, or one (default: off)",
    )
    return parser.parse_args(argv)


def warmed(embedder: Embedder) -> float:
    """Load the model now; seconds taken."""
    with clock() as elapsed:
        embedder.embed(["warm up the model"])
    return round(elapsed().wall, 2)


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def selected(args: argparse.Namespace) -> tuple[str, ...]:
    """The sections to run: --only's, else all (synthetic unless --skip-synthetic)."""
    if args.only:
        return tuple(dict.fromkeys(args.only))
    return tuple(s for s in SECTIONS if not (s == "synthetic" and args.skip_synthetic))


def bench(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Everything is ingested first on all cores, as `kb ingest` runs; then the queries run
    with the embedder `kb serve` builds (torch on KB_SERVE_THREADS threads, process-wide)."""
    loads: dict[str, float] = {}
    logging.getLogger("kb.index").addHandler(ACL_DROPS)
    sections = selected(args)
    variant = Variant.named(args.chunk_context)
    folders = {"contoso": CONTOSO / "docs", "golden": CORPUS}
    folders |= {name: folder / "docs" for name, folder in DOCUMENT_SETS.items()}
    wanted = [name for name in folders if name in sections]
    copied, root_notes = prepare_roots([folders[name] for name in wanted], workdir)
    if len(copied) != len(wanted):
        sys.exit(f"missing benchmark folder: {root_notes}")
    copies = dict(zip(wanted, copied, strict=True))
    settings = settings_for(workdir)
    ingest_embedder = build_embedder(settings)
    model = {"name": ingest_embedder.name, "load_seconds": warmed(ingest_embedder)}
    model["ingest_torch_threads"] = torch_threads()
    ingested: dict[str, Ingested] = {}
    for name, root in copies.items():
        phase(f"{name}: ingest", loads)
        ingested[name] = ingest(settings_for(workdir / name), ingest_embedder, root, variant)
    baselines: dict[str, LlamaBaseline] = {}
    model_path = settings.embedding_model_path or packaged_model_path()
    for name in ("contoso", *DOCUMENT_SETS):
        if name in copies and not args.skip_llamaindex:
            phase(f"{name}: plain llamaindex, build", loads)
            baselines[name] = build_llama_baseline(
                model_path, [copies[name]], workdir / f"llama-{name}"
            )
    embedder = build_embedder(settings, threads=settings.serve_threads)
    warmed(embedder)
    model["query_torch_threads"] = torch_threads()
    result: dict[str, Any] = {"roots": root_notes, "model": model, "sections": sections}
    result["chunk_context"] = dataclasses.asdict(variant)
    if "contoso" in ingested:
        result["contoso"] = run_contoso(ingested["contoso"], embedder, loads)
    if "contoso" in baselines:
        phase("contoso: plain llamaindex, queries", loads)
        result["llamaindex"] = run_llama_contoso(baselines["contoso"])
    if "golden" in ingested:
        result["golden"] = run_golden(ingested["golden"], embedder, loads)
    for name in DOCUMENT_SETS:
        if name in ingested:
            result[name] = run_lookalike(name, ingested[name], embedder, loads)
        if name in baselines:
            phase(f"{name}: plain llamaindex, queries", loads)
            result[f"llamaindex_{name}"] = run_llama_lookalike(name, baselines[name])
    if "synthetic" in sections:
        result["synthetic"] = run_synthetic(workdir, embedder, args.synthetic_chunks, loads)
    result["load_1min_at_phase_start"] = loads
    return result


def out_path(args: argparse.Namespace) -> Path:
    """--out, else data/bench/retrieval.json for a full run, and a file named by the
    sections and the context variant for a partial one (so it does not overwrite the full)."""
    if args.out is not None:
        return Path(args.out)
    if not args.only and args.chunk_context == "off":
        return DEFAULT_OUT
    name = "-".join(selected(args)) + f"-context-{args.chunk_context}"
    return DEFAULT_OUT.with_name(f"retrieval-{name}.json")


def main(argv: Sequence[str] | None = None) -> int:
    configure_runtime()
    os.environ.setdefault("KB_TODAY", GOLDEN_TODAY)
    args = parse_args(argv)
    result = stamped_run("kb-bench-", lambda workdir: bench(workdir, args))
    result["targets"] = targets(result)
    out = out_path(args)
    write_json(out, result)
    print_report(result)
    print(f"run took {result['run_seconds']} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
