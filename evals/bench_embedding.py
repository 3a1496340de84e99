"""Embedding backends compared in one run (`python -m evals.bench_embedding`): `torch`
(sentence-transformers), `onnx` (ONNX Runtime, float32) and `onnx-int8` (dynamically quantized),
all the packaged MiniLM, built by `api/assembly.py` from KB_EMBED_BACKEND.

1. Retrieval quality. contoso_hr (../shared/bench/contoso_hr) and the golden set (corpus/) are
   ingested by our Ingester once per backend, each into its own fresh store, and each question
   is retrieved top-10 in the hybrid and dense modes with retrievers built as the app builds
   them, its query embedded by the same backend: the hit@k and MRR@10 of evals/bench_retrieval.py
   (contoso: a chunk of the reference file within a page of the reference page; golden: an
   expected document, asked as `principal_groups`). The texts the torch ingest embedded are kept
   for the next two parts.
2. Speed. (a) ingest-like: the longest of those chunk texts (150 words or more, up to
   `--texts`), embedded in batches of KB_EMBED_BATCH_SIZE on every core, as `kb ingest` runs;
   texts/s. (b) queries: every contoso and golden question alone (batch 1) on KB_SERVE_THREADS
   threads, as `kb serve` embeds them; p50/p95 ms. The backends take turns, round by round for
   (a) and query by query for (b), the order rotating, so a change of the machine's load weighs on
   all alike; ratios are against torch.
3. Agreement: the cosine of each backend's vector with torch's for every text of part 2.

A backend may become the default only if its hit@5 and MRR stay within RULE_MARGIN of torch's
on both datasets in both modes; the verdict is printed and kept in the JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from api.assembly import build_embedder
from api.settings import Settings
from evals.bench_retrieval import (
    CORPUS,
    GOLDEN_TODAY,
    Ingested,
    Variant,
    contoso_rank,
    golden_rank,
    ingest,
    load_contoso,
    product_retrievers,
    rank_metrics,
)
from evals.benchkit import (
    CONTOSO,
    REPO,
    Column,
    clock,
    configure_runtime,
    format_table,
    latency_ms,
    percentiles,
    phase,
    prepare_roots,
    stamped_run,
    verdict,
    write_json,
)
from evals.golden import load_golden
from index.embedding import EMBEDDERS, Embedder
from index.filters import ADMIN, Principal
from index.hybrid import Mode

BACKENDS = tuple(EMBEDDERS)  # torch first: the reference
DATASETS = {"contoso": CONTOSO / "docs", "golden": CORPUS}
MODES: tuple[Mode, ...] = ("hybrid", "dense")
RULE_MARGIN = 0.005  # what a backend may move hit@5 or MRR, either way, to become the default
RULE_METRICS = ("hit@5", "mrr")
MIN_WORDS = 150  # ingest-like texts: chunks near the 254-word-piece budget
DEFAULT_OUT = REPO / "data" / "bench" / "embedding.json"


class Recorder:
    """An embedder that keeps every text it embedded (the chunks as the ingester embeds them)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.texts: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.inner.embed(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's thread count (process-wide) for a block: the ONNX sessions have their own."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def backend_settings(workdir: Path, backend: str, dataset: str) -> Settings:
    """The product's settings (defaults, KB_* variables, no .env file) with this backend."""
    return Settings(data_dir=workdir / backend / dataset, embed_backend=backend, _env_file=None)


def warmed(embedder: Embedder) -> float:
    """Load (and, the first time, export) the model now; seconds taken."""
    with clock() as elapsed:
        embedder.embed(["warm up the model"])
    return round(elapsed().wall, 2)


# -- 1. retrieval quality ------------------------------------------------------------------------


def queries() -> dict[str, list[tuple[str, Principal]]]:
    contoso, _ = load_contoso(CONTOSO / "qa")
    golden = load_golden()
    return {
        "contoso": [(q.question, ADMIN) for q in contoso],
        "golden": [(q.question, Principal.of(*q.principal_groups)) for q in golden],
    }


def ranks(dataset: str, runs: Sequence[Any]) -> list[int | None]:
    """First-hit ranks as evals/bench_retrieval.py counts them (golden: answerable only)."""
    if dataset == "contoso":
        contoso, _ = load_contoso(CONTOSO / "qa")
        return [contoso_rank(r.hits, q.ref) for q, r in zip(contoso, runs, strict=True)]
    golden = load_golden()
    pairs = zip(golden, runs, strict=True)
    return [golden_rank(r.hits, q) for q, r in pairs if q.answerable]


def quality(ingested: Ingested, dataset: str, embedder: Embedder) -> dict[str, Any]:
    retrievers = product_retrievers(ingested.settings, ingested.store, embedder, Variant())
    runs = retrievers.retrieve_all(queries()[dataset], MODES)
    out: dict[str, Any] = {"chunks": ingested.summary["chunks"]}
    out["ingest_seconds"] = ingested.summary["seconds"]
    for mode in MODES:
        out[mode] = rank_metrics(ranks(dataset, runs[mode]))
    return out


def rule(found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per backend: its differences from torch, and whether all stay within RULE_MARGIN."""
    out: dict[str, Any] = {}
    for backend in BACKENDS[1:]:
        diffs = {
            f"{dataset} {mode} {metric}": round(
                found[backend][dataset][mode][metric] - found["torch"][dataset][mode][metric], 3
            )
            for dataset in DATASETS
            for mode in MODES
            for metric in RULE_METRICS
        }
        worst = max(abs(d) for d in diffs.values())
        out[backend] = {"differences": diffs, "worst": worst, "met": worst <= RULE_MARGIN}
    return out


def run_quality(
    workdir: Path, roots: dict[str, Path], loads: dict[str, float]
) -> tuple[dict[str, Any], list[str]]:
    """Each backend ingests each dataset, then retrieves its questions; the torch ingest's
    embedded texts come back too."""
    found: dict[str, Any] = {}
    recorded: list[str] = []
    for backend in BACKENDS:
        base = backend_settings(workdir, backend, "-")
        recorder = Recorder(build_embedder(base))
        found[backend] = {"load_seconds": warmed(recorder)}
        query_embedder = build_embedder(base, threads=base.serve_threads)
        for dataset, root in roots.items():
            phase(f"{backend}: {dataset}, ingest and retrieval", loads)
            with torch_threads(os.cpu_count() or 1):
                done = ingest(
                    backend_settings(workdir, backend, dataset), recorder, root, Variant()
                )
            with torch_threads(base.serve_threads):
                found[backend][dataset] = quality(done, dataset, query_embedder)
        if backend == "torch":
            recorded = recorder.texts
    return found, recorded


# -- 2. speed, 3. agreement ---------------------------------------------------------------------


def ingest_like(texts: Sequence[str], limit: int) -> list[str]:
    """Distinct texts of MIN_WORDS words or more, up to `limit`, evenly spread."""
    long = sorted({t for t in texts if len(t.split()) >= MIN_WORDS})
    step = max(1, len(long) // limit)
    return long[::step][:limit]


def rotated(items: Sequence[str], turn: int) -> list[str]:
    return [items[(turn + i) % len(items)] for i in range(len(items))]


def batch_speed(
    embedders: dict[str, Embedder], texts: Sequence[str], rounds: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every backend embeds all `texts` once per round, the order rotating each round."""
    seconds: dict[str, list[float]] = {b: [] for b in embedders}
    cpu: dict[str, list[float]] = {b: [] for b in embedders}
    vectors: dict[str, np.ndarray] = {}
    for turn in range(rounds):
        for backend in rotated(list(embedders), turn):
            with clock() as elapsed:
                vectors[backend] = embedders[backend].embed(texts)
            seconds[backend].append(elapsed().wall)
            cpu[backend].append(elapsed().cpu)
    out = {}
    for backend, walls in seconds.items():
        wall = float(np.median(walls))
        out[backend] = {
            "rounds_seconds": [round(s, 2) for s in walls],
            "texts_per_s": round(len(texts) / wall, 1),
            "cpu_ms_per_text": round(float(np.median(cpu[backend])) * 1000 / len(texts), 1),
            "x_torch": round(float(np.median(seconds["torch"])) / wall, 2),
        }
    return out, vectors


def query_speed(
    embedders: dict[str, Embedder], questions: Sequence[str]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Each question alone through every backend in turn, the order rotating per question."""
    seconds: dict[str, list[float]] = {b: [] for b in embedders}
    rows: dict[str, list[np.ndarray]] = {b: [] for b in embedders}
    for turn, question in enumerate(questions):
        for backend in rotated(list(embedders), turn):
            start = time.perf_counter()
            vector = embedders[backend].embed([question])
            seconds[backend].append(time.perf_counter() - start)
            rows[backend].append(vector[0])
    torch_p50 = float(np.median(seconds["torch"]))
    out = {
        b: {**latency_ms(s), "x_torch": round(torch_p50 / float(np.median(s)), 2)}
        for b, s in seconds.items()
    }
    return out, {b: np.stack(r) for b, r in rows.items()}


def agreement(vectors: dict[str, np.ndarray]) -> dict[str, Any]:
    """Cosine with torch's vector (all are unit length), per backend."""
    out = {}
    for backend, found in vectors.items():
        cosines = np.sum(found * vectors["torch"], axis=1)
        out[backend] = {
            "n": len(cosines),
            "min": round(float(cosines.min()), 5),
            "mean": round(float(cosines.mean()), 5),
            **percentiles(cosines.tolist(), (1, 50), digits=5),
        }
    return out


def run_speed(
    workdir: Path, texts: Sequence[str], rounds: int, loads: dict[str, float]
) -> dict[str, Any]:
    questions = [q for pairs in queries().values() for q, _ in pairs]
    settings = {b: backend_settings(workdir, b, "speed") for b in BACKENDS}
    threads = settings["torch"].serve_threads
    ingesting = {b: build_embedder(s) for b, s in settings.items()}
    serving = {b: build_embedder(s, threads=threads) for b, s in settings.items()}
    phase("speed: ingest-like batches, the backends taking turns", loads)
    with torch_threads(os.cpu_count() or 1):
        for embedder in ingesting.values():
            warmed(embedder)
        batches, batch_vectors = batch_speed(ingesting, texts, rounds)
    phase("speed: single queries, the backends taking turns", loads)
    with torch_threads(threads):
        for embedder in serving.values():
            warmed(embedder)
        single, query_vectors = query_speed(serving, questions)
    return {
        "batch": {"batch_size": settings["torch"].embed_batch_size, "texts": len(texts), **batches},
        "query": {"threads": threads, "questions": len(questions), **single},
        "agreement": {
            "ingest_like_texts": agreement(batch_vectors),
            "queries": agreement(query_vectors),
        },
    }


# -- report ---------------------------------------------------------------------------------------


def speed_lines(speed: dict[str, Any]) -> list[str]:
    columns = [
        Column("backend", 11, "<"),
        Column("batch texts/s", 14),
        Column("x torch", 9),
        Column("cpu ms/text", 12),
        Column("query p50 ms", 13),
        Column("p95", 7),
        Column("x torch", 9),
        Column("cos min", 9),
        Column("cos mean", 10),
    ]
    rows = []
    for b in BACKENDS:
        batch, query = speed["batch"][b], speed["query"][b]
        texts, qs = speed["agreement"]["ingest_like_texts"][b], speed["agreement"]["queries"][b]
        cos_min, cos_mean = min(texts["min"], qs["min"]), (texts["mean"] + qs["mean"]) / 2
        row = [b, batch["texts_per_s"], batch["x_torch"], batch["cpu_ms_per_text"]]
        row += [query["p50_ms"], query["p95_ms"], query["x_torch"], cos_min, round(cos_mean, 5)]
        rows.append(row)
    head = (
        f"speed: {speed['batch']['texts']} texts of >= {MIN_WORDS} words in batches of "
        f"{speed['batch']['batch_size']} on all cores; {speed['query']['questions']} questions "
        f"one at a time on {speed['query']['threads']} thread(s)"
    )
    return [head, *format_table(columns, rows)]


def quality_lines(found: dict[str, Any], verdicts: dict[str, Any]) -> list[str]:
    columns = [Column("backend", 11, "<")]
    for dataset in DATASETS:
        for mode in MODES:
            columns.append(Column(f"{dataset} {mode} hit@5 / MRR", 30))
    rows = []
    for b in BACKENDS:
        cells = [
            f"{found[b][d][m]['hit@5']} / {found[b][d][m]['mrr']}" for d in DATASETS for m in MODES
        ]
        rows.append([b, *cells])
    lines = ["retrieval quality (contoso: reference page +-1; golden: expected document)"]
    lines += format_table(columns, rows)
    for backend, v in verdicts.items():
        lines.append(
            f"rule for {backend} (|difference| <= {RULE_MARGIN} everywhere): {verdict(v['met'])}"
            f" (worst {v['worst']}: {v['differences']})"
        )
    return lines


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_embedding", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--texts", type=int, default=256, help="ingest-like texts (default 256)")
    parser.add_argument("--rounds", type=int, default=3, help="batch rounds (default 3)")
    return parser.parse_args(argv)


def bench(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    loads: dict[str, float] = {}
    copied, notes = prepare_roots(list(DATASETS.values()), workdir)
    if len(copied) != len(DATASETS):
        sys.exit(f"missing benchmark folder: {notes}")
    roots = dict(zip(DATASETS, copied, strict=True))
    found, recorded = run_quality(workdir, roots, loads)
    texts = ingest_like(recorded, args.texts)
    speed = run_speed(workdir, texts, args.rounds, loads)
    verdicts = rule(found)
    return {"quality": found, "rule": verdicts, "speed": speed, "load_1min_at_phase": loads}


def main(argv: Sequence[str] | None = None) -> int:
    configure_runtime()
    os.environ.setdefault("KB_TODAY", GOLDEN_TODAY)
    args = parse_args(argv)
    result = stamped_run("kb-bench-embed-", lambda workdir: bench(workdir, args))
    write_json(args.out, result)
    lines = ["", *speed_lines(result["speed"]), ""]
    lines += quality_lines(result["quality"], result["rule"])
    lines.append(f"load average (1 min) at each phase: {result['load_1min_at_phase']}")
    print("\n".join(lines))
    print(f"run took {result['run_seconds']} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
