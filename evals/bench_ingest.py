"""Ingestion throughput, in one run on one machine state (`python -m evals.bench_ingest`).

1. Our pipeline, cold: `Ingester.sync` per root into a fresh embedded store. Thin timing proxies
   around the embedder and the store measure the embed-and-store stage without touching product
   code, and the embedder proxy keeps every text it embeds.
2. Bare encode: those same texts straight through `SentenceTransformer.encode`, the model-bound
   limit. Target: our embed-and-store chunks/s >= 0.85 x bare chunks/s.
3. Re-ingest unchanged: `sync` again with a new Ingester on the same store. Target: < 5% of cold.
4. A plain LlamaIndex pipeline (../shared/DESIGN.md, "Benchmarks"): pypdf pages,
   SentenceSplitter(512, 20), HuggingFaceEmbedding on the same local model, ChromaVectorStore,
   VectorStoreIndex. Its chunks are ~512 tokens and the model truncates them at 256, so chunk
   rates are not comparable one-to-one: words/s and window tokens/s (word pieces the model
   actually reads) are reported for both pipelines.

Wall and process CPU seconds are both kept, with the load average at each phase: on a shared
two-core machine CPU seconds tell contention from a real change.

The roots are copied into the data folder first (the benchmark folder is read-only), and a
minimal sidecar is written for any non-Markdown document that has none.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from evals.benchkit import (
    REPO,
    Column,
    Span,
    Stopwatch,
    TimedProxy,
    build_llama_baseline,
    clock,
    configure_runtime,
    format_table,
    machine,
    phase,
    prepare_roots,
    verdict,
    write_json,
)
from index.embedding import SentenceTransformerEmbedder, packaged_model_path
from index.store import ChromaStore
from ingest.sync import Ingester, IngestReport

DEFAULT_ROOTS = ("../shared/bench/contoso_hr/docs", "corpus")
DEFAULT_OUT = REPO / "data" / "bench" / "ingest.json"
STORE_WRITES = ("put_document", "upsert_chunks", "delete_other_versions")
TARGET_EMBED_VS_BARE = 0.85
TARGET_REINGEST_VS_COLD = 0.05
BARE_BATCH = 64
CountTokens = Callable[[Sequence[str]], list[int]]


# -- timing -----------------------------------------------------------------------------------


class RecordingEmbedder(TimedProxy):
    """An embedder proxy that times `embed` and `count_tokens` and keeps every text embedded."""

    def __init__(self, inner: SentenceTransformerEmbedder, watch: Stopwatch) -> None:
        super().__init__(inner, watch, ("count_tokens",))
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._watch.time("embed"):
            vectors = self._inner.embed(texts)
        self.texts.extend(texts)
        return cast(np.ndarray, vectors)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


@dataclass(frozen=True)
class TextStats:
    """Size of a list of embedded texts: chunks, words, word pieces the model reads."""

    chunks: int
    words: int
    window_tokens: int
    truncated: int

    @classmethod
    def of(cls, texts: Sequence[str], count_tokens: CountTokens, window: int) -> TextStats:
        tokens = count_tokens(texts) if texts else []
        return cls(
            chunks=len(texts),
            words=sum(len(t.split()) for t in texts),
            window_tokens=sum(min(n, window) for n in tokens),
            truncated=sum(n > window for n in tokens),
        )

    def rates(self, span: Span) -> dict[str, Any]:
        seconds = span.wall
        return {
            **span.to_json(),
            "chunks_per_cpu_s": round(rate(self.chunks, span.cpu), 2),
            "chunks_per_s": round(rate(self.chunks, seconds), 2),
            "words_per_s": round(rate(self.words, seconds), 1),
            "window_tokens_per_s": round(rate(self.window_tokens, seconds), 1),
        }

    def to_json(self) -> dict[str, int]:
        return {
            "chunks": self.chunks,
            "words": self.words,
            "window_tokens": self.window_tokens,
            "truncated_by_model": self.truncated,
        }


# -- our pipeline -----------------------------------------------------------------------------


def print_progress(done: int, total: int, rel: str) -> None:
    print(f"  [{done}/{total}] {rel}", file=sys.stderr, flush=True)


def sync_all(
    store: Any, embedder: Any, roots: Sequence[Path], progress: bool
) -> list[IngestReport]:
    ingester = Ingester(cast(ChromaStore, store), embedder)
    callback = print_progress if progress else None
    return [ingester.sync(root, callback) for root in roots]


def report_summary(reports: Sequence[IngestReport]) -> dict[str, Any]:
    return {
        "added": sum(len(r.added) for r in reports),
        "updated": sum(len(r.updated) for r in reports),
        "unchanged": sum(len(r.unchanged) for r in reports),
        "removed": sum(len(r.removed) for r in reports),
        "failed": [f.to_json() for r in reports for f in r.failed],
    }


def load_our_model(embedder: SentenceTransformerEmbedder) -> float:
    """Load and warm the model (one embed call); seconds taken."""
    with clock() as elapsed:
        embedder.embed(["warm up the model"])
    return elapsed().wall


@dataclass
class ColdRun:
    result: dict[str, Any]
    store: ChromaStore
    texts: list[str]  # every text embedded, in order
    stats: TextStats
    total: Span


def run_ours_cold(
    embedder: SentenceTransformerEmbedder, roots: Sequence[Path], store_dir: Path
) -> ColdRun:
    store = ChromaStore.open(
        path=store_dir, chunks_name="bench_chunks", documents_name="bench_docs"
    )
    watch = Stopwatch()
    recorder = RecordingEmbedder(embedder, watch)
    with clock() as elapsed:
        reports = sync_all(TimedProxy(store, watch, STORE_WRITES), recorder, roots, progress=True)
    total = elapsed()
    stage = watch.total(("embed", *STORE_WRITES))
    stats = TextStats.of(recorder.texts, embedder.count_tokens, embedder.max_tokens - 2)
    result = {
        "documents": len(store.documents()),
        "chunks_in_store": store.count_chunks(),
        "embedded": stats.to_json(),
        "overall": stats.rates(total),
        "embed_and_store": stats.rates(stage),
        "breakdown": watch.to_json(),
        "outside_embed_and_store": (total - stage).to_json(),
        "report": report_summary(reports),
    }
    return ColdRun(result, store, recorder.texts, stats, total)


def run_reingest(
    embedder: SentenceTransformerEmbedder, store: ChromaStore, roots: Sequence[Path], cold: Span
) -> dict[str, Any]:
    watch = Stopwatch()
    with clock() as elapsed:
        reports = sync_all(
            TimedProxy(store, watch, STORE_WRITES),
            TimedProxy(embedder, watch, ("embed", "count_tokens")),
            roots,
            progress=False,
        )
    span = elapsed()
    ratio = span.wall / cold.wall
    return {
        **span.to_json(),
        "ratio_to_cold": round(ratio, 4),
        "cpu_ratio_to_cold": round(span.cpu / cold.cpu, 4),
        "target": f"< {TARGET_REINGEST_VS_COLD}",
        "meets_target": ratio < TARGET_REINGEST_VS_COLD,
        "breakdown": watch.to_json(),
        "report": report_summary(reports),
    }


# -- bare encode ------------------------------------------------------------------------------


def run_bare(model_path: Path, texts: Sequence[str], stats: TextStats) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer

    with clock() as load:
        model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
        model.encode(["warm up the model"], show_progress_bar=False)
    with clock() as elapsed:
        model.encode(
            list(texts),
            batch_size=BARE_BATCH,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
    return {
        "load_seconds": round(load().wall, 3),
        "batch_size": BARE_BATCH,
        **stats.rates(elapsed()),
    }


# -- plain LlamaIndex baseline ----------------------------------------------------------------


def run_llamaindex(
    model_path: Path,
    roots: Sequence[Path],
    chroma_dir: Path,
    count_tokens: CountTokens,
    window: int,
) -> dict[str, Any]:
    from llama_index.core.schema import MetadataMode

    baseline = build_llama_baseline(model_path, roots, chroma_dir)
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in baseline.nodes]
    stats = TextStats.of(texts, count_tokens, window)
    return {
        "model_load_seconds": round(baseline.model_load_seconds, 3),
        "embed_batch_size": baseline.model.embed_batch_size,
        "files": baseline.files,
        "documents": len(baseline.documents),
        "nodes": len(baseline.nodes),
        "embedded": stats.to_json(),
        "overall": stats.rates(baseline.total),
        "embed_and_store": stats.rates(baseline.watch.spans["embed_and_store"]),
        "breakdown": baseline.watch.to_json(),
    }


# -- output -----------------------------------------------------------------------------------


def table_rows(result: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    ours, bare, llama = result["ours_cold"], result["bare_encode"], result["llamaindex"]
    chunks = str(ours["embedded"]["chunks"])
    rows = [
        ("ours cold, whole sync", chunks, ours["overall"]),
        ("ours embed+store", chunks, ours["embed_and_store"]),
        ("bare encode, same texts", chunks, bare),
        ("ours re-ingest unchanged", "0", result["reingest"]),
    ]
    if llama:
        nodes = str(llama["nodes"])
        rows.append(("llamaindex, whole", nodes, llama["overall"]))
        rows.append(("llamaindex embed+store", nodes, llama["embed_and_store"]))
    return rows


COLUMNS = (
    ("seconds", "seconds"),
    ("cpu_seconds", "cpu s"),
    ("chunks_per_s", "chunks/s"),
    ("words_per_s", "words/s"),
    ("window_tokens_per_s", "tok/s"),
)


def print_table(result: dict[str, Any]) -> None:
    columns = [Column("run", 26, "<"), Column("chunks", 7)]
    columns += [Column(title, 10) for _, title in COLUMNS]
    rows = [
        [name, chunks, *(row.get(key, "") for key, _ in COLUMNS)]
        for name, chunks, row in table_rows(result)
    ]
    print()
    print("\n".join(format_table(columns, rows)))
    print("tok/s: word pieces the model reads (input cut at its 256-piece window);")
    print("cpu s: CPU seconds of this process, all threads (the 2 cores may be shared)")
    for line in summary_lines(result):
        print(line)


def summary_lines(result: dict[str, Any]) -> list[str]:
    ours, targets, llama = result["ours_cold"], result["targets"], result["llamaindex"]
    reingest = result["reingest"]
    lines = [
        f"documents {ours['documents']}, chunks {ours['chunks_in_store']}; model load "
        f"{result['model']['load_seconds']} s (excluded from all timings)",
        f"ours embed+store / bare encode, chunks/s = {targets['embed_vs_bare']} "
        f"(by CPU time {targets['embed_vs_bare_cpu']}); target >= {TARGET_EMBED_VS_BARE}: "
        f"{verdict(targets['embed_vs_bare_met'])}",
        f"re-ingest unchanged / cold = {reingest['ratio_to_cold']}; target < "
        f"{TARGET_REINGEST_VS_COLD}: {verdict(reingest['meets_target'])}",
    ]
    if ours["report"]["failed"]:
        lines.append(f"our pipeline failed on {len(ours['report']['failed'])} file(s): see JSON")
    if llama:
        lines.append(
            f"llamaindex: {llama['embedded']['truncated_by_model']}/{llama['nodes']} nodes "
            "longer than the model window; files it cannot read offline (skipped): "
            f"{', '.join(llama['files']['skipped']) or 'none'}"
        )
    return lines


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_ingest", description=__doc__)
    parser.add_argument(
        "--roots",
        nargs="+",
        default=list(DEFAULT_ROOTS),
        help="folders to ingest; relative paths are resolved against the repository root",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="an empty or new folder for copies and stores (default: a fresh temporary folder)",
    )
    parser.add_argument("--skip-llamaindex", action="store_true", help="skip the baseline")
    return parser.parse_args(argv)


def ratios(ours: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    stage = ours["embed_and_store"]
    by_wall = stage["chunks_per_s"] / bare["chunks_per_s"]
    by_cpu = stage["chunks_per_cpu_s"] / bare["chunks_per_cpu_s"]
    return {
        "embed_vs_bare": round(by_wall, 3),
        "embed_vs_bare_cpu": round(by_cpu, 3),
        "embed_vs_bare_met": by_wall >= TARGET_EMBED_VS_BARE,
    }


def bench(roots: Sequence[Path], workdir: Path, with_llama: bool) -> dict[str, Any]:
    loads: dict[str, float] = {}
    copies, root_notes = prepare_roots(roots, workdir)
    model_path = packaged_model_path()
    embedder = SentenceTransformerEmbedder(model_path)
    load_seconds = load_our_model(embedder)
    phase("ours, cold ingest", loads)
    cold = run_ours_cold(embedder, copies, workdir / "store")
    phase("bare encode", loads)
    bare = run_bare(model_path, cold.texts, cold.stats)
    phase("re-ingest unchanged", loads)
    reingest = run_reingest(embedder, cold.store, copies, cold.total)
    llama: dict[str, Any] = {}
    if with_llama:
        phase("plain llamaindex", loads)
        window = embedder.max_tokens - 2
        llama = run_llamaindex(model_path, copies, workdir / "llama", embedder.count_tokens, window)
    return {
        "roots": root_notes,
        "load_1min_at_phase_start": loads,
        "model": {"path": str(model_path), "load_seconds": round(load_seconds, 3)},
        "ours_cold": cold.result,
        "bare_encode": bare,
        "reingest": reingest,
        "llamaindex": llama,
        "targets": ratios(cold.result, bare),
    }


def main(argv: Sequence[str] | None = None) -> int:
    configure_runtime()
    args = parse_args(argv)
    roots = [(REPO / r).resolve() for r in args.roots]
    started = dt.datetime.now(dt.UTC)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with clock() as elapsed:
        if args.data_dir is None:
            with tempfile.TemporaryDirectory(prefix="kb-bench-") as tmp:
                result = bench(roots, Path(tmp), not args.skip_llamaindex)
        else:
            if args.data_dir.exists() and any(args.data_dir.iterdir()):
                sys.exit(f"--data-dir {args.data_dir} is not empty: give a new or empty folder")
            result = bench(roots, args.data_dir.resolve(), not args.skip_llamaindex)
    result = {
        "started_at": started.isoformat(timespec="seconds"),
        "run_seconds": round(elapsed().wall, 1),
        "machine": {**machine(), "load_average_at_start": load_before},
        **result,
    }
    write_json(args.out, result)
    print_table(result)
    print(f"run took {result['run_seconds']} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
