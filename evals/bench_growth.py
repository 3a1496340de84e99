"""Growth: the store at 10k, 100k and 1M chunks, embedded and through a `chroma run` server, in
one run (issue 14, item 4): `python -m evals.bench_growth [--sizes ...] [--server-sizes ...]`.

For each size and mode two processes run one after the other, as they do in production:

- **the ingestion job** (`--role writer`) opens the store through `api/assembly.py`, loads the
  ingest embedder, and writes the synthetic store of `evals/synthetic_store.py` in batches of
  5,000 chunks with their registry records (25 chunks a document). Up to `--real-up-to` chunks
  (10k by default) the vectors are the real MiniLM's, embedded as `kb ingest` embeds; above it
  they are precomputed random unit vectors. It records write throughput and its RSS after every
  batch (flat when writing streams), then syncs a small folder of real documents into the big
  store with the product's Ingester (an incremental ingest reads the whole registry), and
  reports its peak RSS;
- **an API worker** (`--role worker`) builds what `kb serve` builds (the serve embedder, the
  keyword index, the hybrid retriever with the default options), warms it, and answers
  `--queries` hybrid queries of 3-6 pseudo-words in turn unfiltered, with a department filter
  and as a one-group principal; it reports the keyword index's build time and peak memory
  growth, latency per kind, and its own peak RSS.

In server mode a `chroma run` on loopback holds the data, and its peak RSS is reported too.
Every store is deleted after its size unless `--keep`; 1M chunks take about 6 GB on disk.

Timings are wall times on a possibly shared machine; the load average is kept with each phase.
Results go to `data/bench/growth.json` (or `--out`) and a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from api.assembly import (
    build_embedder,
    build_ingester,
    build_serve_embedder,
    build_store,
    configure_runtime,
    retrieval_options,
)
from api.settings import Settings
from evals.bench_retrieval import GOLDEN_TODAY
from evals.benchkit import (
    REPO,
    Column,
    clock,
    format_table,
    latency_ms,
    machine,
    phase,
    verdict,
    write_json,
)
from evals.synthetic_store import (
    FILTER_KINDS,
    SyntheticSpec,
    Vocabulary,
    build_keyword,
    peak_rss_mb,
    rss_mb,
    synthetic_batch,
)
from index.hybrid import HybridRetriever
from index.records import DocumentRecord, chunk_id
from index.store import ChromaStore

SIZES = (10_000, 100_000, 1_000_000)
SERVER_SIZES = (10_000, 100_000)
REAL_UP_TO = 10_000
QUERIES = 200
K = 10
CHROMA = Path(sys.executable).parent / "chroma"
# A handful of real documents the ingestion job adds to the big store at the end.
INCOMING = ("coe", "finance")
TARGET_P50_MS = 150.0
TARGET_MEMORY_RATIO = 1.5


def settings_for(data: Path, port: int | None) -> Settings:
    chroma = {"chroma_host": "127.0.0.1", "chroma_port": port} if port else {}
    return Settings(_env_file=None, data_dir=data, today=GOLDEN_TODAY, **chroma)  # type: ignore[arg-type]


def spec_and_vocabulary(size: int, dimension: int) -> tuple[SyntheticSpec, Vocabulary, Any]:
    """The same spec, vocabulary and random stream in the writer and the worker."""
    spec = SyntheticSpec(chunks=size, dimension=dimension, queries=QUERIES)
    rng = np.random.default_rng(spec.seed)
    return spec, Vocabulary.make(rng, spec.vocabulary, spec.zipf_exponent), rng


# -- the ingestion job ------------------------------------------------------------------------


def write_registry(
    store: ChromaStore, records: Sequence[DocumentRecord], ids: Sequence[str], vectors: np.ndarray
) -> None:
    """The registry records of the documents that start in a batch, in one upsert; a record's
    vector is its first chunk's."""
    first = {cid: n for n, cid in enumerate(ids)}
    rows = [first[chunk_id(r.doc_id, r.content_hash, 0)] for r in records]
    store.registry.upsert(
        ids=[r.doc_id for r in records],
        embeddings=vectors[rows],
        metadatas=[r.to_chroma() for r in records],
    )


def writer(data: Path, size: int, port: int | None, real_up_to: int) -> dict[str, Any]:
    settings = settings_for(data, port)
    configure_runtime(settings)
    store = build_store(settings)
    embedder = build_embedder(settings)  # the ingest job always has its model loaded
    spec, vocab, rng = spec_and_vocabulary(size, embedder.dimension)
    real = size <= real_up_to
    rss: list[tuple[int, float]] = [(0, round(rss_mb(), 1))]
    seconds = {"generate": 0.0, "embed": 0.0, "write": 0.0}
    for start in range(0, spec.chunks, spec.batch):
        end = min(start + spec.batch, spec.chunks)
        records: list[DocumentRecord] = []
        with clock() as took:
            ids, vectors, texts, metadatas = synthetic_batch(rng, vocab, spec, start, end, records)
        seconds["generate"] += took().wall
        if real:
            with clock() as took:
                vectors = embedder.embed(texts)
            seconds["embed"] += took().wall
        with clock() as took:
            store.upsert_chunks(ids, vectors, texts, metadatas)
            write_registry(store, records, ids, vectors)
        seconds["write"] += took().wall
        rss.append((end, round(rss_mb(), 1)))
        if end % 50_000 == 0:
            print(f"  {end} chunks written", file=sys.stderr, flush=True)
    store.bump_generation()
    written = sum(seconds[k] for k in ("embed", "write"))
    incoming = incremental_ingest(settings, store, embedder, data)
    return {
        "chunks": store.count_chunks(),
        "documents": len(store.documents()),
        "vectors": "MiniLM (real)" if real else "random unit vectors (precomputed)",
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "chunks_per_second": round(size / written, 1) if written else None,
        "rss_mb_by_chunks": rss,
        "rss_growth_over_second_half_mb": round(rss[-1][1] - rss[len(rss) // 2][1], 1),
        "incremental_ingest": incoming,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def incremental_ingest(
    settings: Settings, store: ChromaStore, embedder: Any, data: Path
) -> dict[str, Any]:
    """A few real documents synced into the big store by the product's Ingester."""
    root = data / "incoming"
    for department in INCOMING:
        shutil.copytree(REPO / "corpus" / department, root / department, dirs_exist_ok=True)
    with clock() as took:
        report = build_ingester(settings, store, embedder).sync(root)
    return {
        "documents": len(report.added) + len(report.updated),
        "chunks": len(report.written),
        "failed": len(report.failed),
        "seconds": round(took().wall, 1),
    }


# -- an API worker ----------------------------------------------------------------------------


def worker(data: Path, size: int, port: int | None) -> dict[str, Any]:
    settings = settings_for(data, port)
    configure_runtime(settings)
    store = build_store(settings)
    embedder = build_serve_embedder(settings)
    keyword, build = build_keyword(store, settings.keyword_index_path)
    retriever = HybridRetriever(store, embedder, keyword, retrieval_options(settings))
    retriever.warm()
    spec, vocab, rng = spec_and_vocabulary(size, embedder.dimension)
    rng = np.random.default_rng(spec.seed + 1)
    today = settings.today_date()
    kinds = list(FILTER_KINDS)
    seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
    for n in range(spec.queries):
        kind = kinds[n % len(kinds)]
        _, principal, filters = FILTER_KINDS[kind](rng)
        query = vocab.query(rng)
        started = time.perf_counter()
        retriever.retrieve(query, K, today=today, filters=filters, principal=principal)
        seconds[kind].append(time.perf_counter() - started)
    return {
        "keyword_build": build,
        "hybrid_latency": {kind: latency_ms(values) for kind, values in seconds.items()},
        "rss_mb": round(rss_mb(), 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


# -- the run ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def chroma_server(folder: Path) -> Iterator[tuple[int, int]]:
    """A `chroma run` on loopback over `folder`: (port, pid)."""
    port = free_port()
    command = [str(CHROMA), "run", "--path", str(folder), "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"chroma run did not start on port {port}") from None
                time.sleep(0.3)
        yield port, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def role(name: str, data: Path, size: int, port: int | None, real_up_to: int) -> dict[str, Any]:
    """Run one role in a fresh process (its memory is its own) and read its JSON."""
    command = [sys.executable, "-m", "evals.bench_growth", "--role", name, "--data", str(data)]
    command += ["--size", str(size), "--real-up-to", str(real_up_to)]
    if port:
        command += ["--port", str(port)]
    with clock() as took:
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=REPO, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = round(took().wall, 1)
    return result


def measure(
    workdir: Path, size: int, mode: str, real_up_to: int, keep: bool, loads: dict[str, float]
) -> dict[str, Any]:
    data = workdir / f"{mode}-{size}"
    data.mkdir(parents=True, exist_ok=True)
    try:
        if mode == "embedded":
            phase(f"{size} chunks, embedded: ingestion job", loads)
            written = role("writer", data, size, None, real_up_to)
            phase(f"{size} chunks, embedded: API worker", loads)
            served = role("worker", data, size, None, real_up_to)
            return {"size": size, "mode": mode, "writer": written, "worker": served}
        with chroma_server(data / "chroma-server") as (port, pid):
            phase(f"{size} chunks, server: ingestion job", loads)
            written = role("writer", data, size, port, real_up_to)
            phase(f"{size} chunks, server: API worker", loads)
            served = role("worker", data, size, port, real_up_to)
            server = {"peak_rss_mb": round(peak_rss_mb(pid), 1)}
        return {"size": size, "mode": mode, "writer": written, "worker": served, "server": server}
    finally:
        if not keep:
            shutil.rmtree(data, ignore_errors=True)


def p50_95(row: dict[str, Any]) -> str:
    return f"{row['p50_ms']} / {row['p95_ms']}"


def table(rows: Sequence[dict[str, Any]]) -> list[str]:
    columns = [Column("chunks", 9, "<"), Column("mode", 9, "<"), Column("write ch/s", 11)]
    columns += [Column("ingest MB", 10), Column("+docs s", 8), Column("BM25 s", 8)]
    columns += [Column("BM25 MB", 8), Column("none p50/95", 14), Column("dept p50/95", 14)]
    columns += [Column("group p50/95", 14), Column("worker MB", 10), Column("server MB", 10)]
    cells = []
    for r in rows:
        w, s, lat = r["writer"], r["worker"], r["worker"]["hybrid_latency"]
        cells.append(
            [
                r["size"],
                r["mode"],
                w["chunks_per_second"],
                w["peak_rss_mb"],
                w["incremental_ingest"]["seconds"],
                s["keyword_build"]["seconds"],
                s["keyword_build"]["memory"]["peak_growth_mb"],
                p50_95(lat["none"]),
                p50_95(lat["department"]),
                p50_95(lat["one_group"]),
                s["peak_rss_mb"],
                r.get("server", {}).get("peak_rss_mb", ""),
            ]
        )
    return format_table(columns, cells)


def targets(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    embedded = {r["size"]: r for r in rows if r["mode"] == "embedded"}
    out: dict[str, Any] = {}
    if 1_000_000 in embedded:
        p50 = embedded[1_000_000]["worker"]["hybrid_latency"]["none"]["p50_ms"]
        out["hybrid_p50_ms_at_1M"] = {"value": p50, "target": TARGET_P50_MS}
        out["hybrid_p50_ms_at_1M"]["met"] = p50 < TARGET_P50_MS
        if 100_000 in embedded:
            big = embedded[1_000_000]["writer"]["peak_rss_mb"]
            small = embedded[100_000]["writer"]["peak_rss_mb"]
            ratio = round(big / small, 2)
            met = ratio <= TARGET_MEMORY_RATIO
            out["ingest_memory_1M_over_100k"] = {"value": ratio, "target": 1.5, "met": met}
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    loads: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    plan = [(size, "embedded") for size in args.sizes]
    plan += [(size, "server") for size in args.server_sizes]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kb-growth-"))
    with clock() as took:
        for size, mode in sorted(plan):
            rows.append(measure(workdir, size, mode, args.real_up_to, args.keep, loads))
            print("\n".join(table(rows[-1:])), file=sys.stderr, flush=True)
    if args.workdir is None and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "run_seconds": round(took().wall, 1),
        "machine": machine(),
        "loads": loads,
        "queries_per_size": QUERIES,
        "k": K,
        "rows": rows,
        "targets": targets(rows),
    }


def sizes(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=sizes, default=SIZES, help="embedded sizes, comma-separated"
    )
    parser.add_argument("--server-sizes", type=sizes, default=SERVER_SIZES)
    parser.add_argument("--real-up-to", type=int, default=REAL_UP_TO)
    parser.add_argument("--out", type=Path, default=REPO / "data" / "bench" / "growth.json")
    parser.add_argument("--workdir", type=Path, help="where the stores go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep every store")
    parser.add_argument("--role", choices=("writer", "worker"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.role == "writer":
        print(json.dumps(writer(args.data, args.size, args.port, args.real_up_to)))
        return 0
    if args.role == "worker":
        print(json.dumps(worker(args.data, args.size, args.port)))
        return 0
    result = run(args)
    write_json(args.out, result)
    print("\n".join(table(result["rows"])))
    for name, row in result["targets"].items():
        print(f"{name}: {row['value']} (target {row['target']}) {verdict(row['met'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
