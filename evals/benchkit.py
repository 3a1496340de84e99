"""What the benchmarks under evals/ share: timing, copies of benchmark folders with minimal
sidecars, the plain LlamaIndex baseline of ../shared/DESIGN.md
("Benchmarks"), percentiles, tables and the machine description."""

from __future__ import annotations

import datetime as dt
import importlib.util
import inspect
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from index.environment import use_offline_environment
from ingest.metadata import sidecar_path, split_front_matter
from ingest.parsing import TEXT_FORMATS
from ingest.sources import discover

REPO = Path(__file__).resolve().parents[1]
CONTOSO = (REPO / ".." / "shared" / "bench" / "contoso_hr").resolve()  # external benchmark
BENCH_SIDECAR = {"doc_type": "policy", "department": "hr", "owner": "bench"}
# Read as plain text by SimpleDirectoryReader when llama-index-readers-file is absent.
LLAMA_TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm"}
LLAMA_CHUNK_SIZE = 512
LLAMA_CHUNK_OVERLAP = 20


def configure_runtime() -> None:
    """No telemetry, no model-hub downloads (index/environment.py; values already set win)."""
    use_offline_environment()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object per non-blank line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# -- timing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """Wall seconds, and CPU seconds of this process (all threads). The machine has two cores
    and may be shared: CPU seconds show how much of a wall-time change is contention."""

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other: Span) -> Span:
        return Span(self.wall + other.wall, self.cpu + other.cpu)

    def __sub__(self, other: Span) -> Span:
        return Span(self.wall - other.wall, self.cpu - other.cpu)

    @classmethod
    def now(cls) -> Span:
        return cls(time.perf_counter(), time.process_time())

    def to_json(self) -> dict[str, float]:
        return {"seconds": round(self.wall, 3), "cpu_seconds": round(self.cpu, 3)}


@contextmanager
def clock() -> Iterator[Callable[[], Span]]:
    """`with clock() as elapsed:` ... `elapsed()` is the block's Span once it is done."""
    start = Span.now()
    end: list[Span] = []
    yield lambda: (end[0] if end else Span.now()) - start
    end.append(Span.now())


def stamped_run(prefix: str, run: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """`run(workdir)` in a temporary folder, its result stamped with when it started, how long
    it took and the machine with its load at the start (bench_retrieval, bench_embedding)."""
    started = dt.datetime.now(dt.UTC)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with clock() as elapsed, tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        result = run(Path(tmp))
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "run_seconds": round(elapsed().wall, 1),
        "machine": {**machine(), "load_average_at_start": load_before},
        **result,
    }


@dataclass
class Stopwatch:
    """Accumulated Spans and call counts per name."""

    spans: dict[str, Span] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        start = Span.now()
        try:
            yield
        finally:
            self.spans[name] = self.spans.get(name, Span()) + (Span.now() - start)
            self.calls[name] = self.calls.get(name, 0) + 1

    def total(self, names: Iterable[str]) -> Span:
        return sum((self.spans.get(n, Span()) for n in names), Span())

    def to_json(self) -> dict[str, Any]:
        return {n: {**s.to_json(), "calls": self.calls[n]} for n, s in self.spans.items()}


class TimedProxy:
    """Delegates every attribute to `inner`; the methods named in `timed` are timed (a method
    that returns a generator: every item it yields)."""

    def __init__(self, inner: Any, watch: Stopwatch, timed: Iterable[str]) -> None:
        self._inner = inner
        self._watch = watch
        self._timed = frozenset(timed)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in self._timed:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._watch.time(name):
                result = attr(*args, **kwargs)
            return self._each_timed(name, result) if inspect.isgenerator(result) else result

        return timed

    def _each_timed(self, name: str, items: Iterator[Any]) -> Iterator[Any]:
        while True:
            with self._watch.time(name):
                item = next(items, _END)
            if item is _END:
                return
            yield item


_END = object()


@contextmanager
def data_folder(kept: Path | None, prefix: str) -> Iterator[Path]:
    """The folder a benchmark ingests into: `kept` (created if needed, reused across runs so
    unchanged documents are not re-ingested) or a temporary one removed afterwards."""
    if kept is not None:
        kept.mkdir(parents=True, exist_ok=True)
        yield kept.resolve()
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


def phase(name: str, loads: dict[str, float]) -> None:
    """Announce a phase and note the 1-minute load average as it starts."""
    loads[name] = round(os.getloadavg()[0], 2)
    print(f"{name} ... (load {loads[name]})", file=sys.stderr, flush=True)


# -- statistics -------------------------------------------------------------------------------


def percentiles(values: Sequence[float], qs: Sequence[int], digits: int = 4) -> dict[str, Any]:
    """{"p10": ..., "p50": ...} (linear interpolation); None for each when `values` is empty."""
    if not values:
        return {f"p{q}": None for q in qs}
    found = np.percentile(np.asarray(values, dtype=float), list(qs))
    return {f"p{q}": round(float(v), digits) for q, v in zip(qs, found, strict=True)}


def latency_ms(seconds: Sequence[float]) -> dict[str, Any]:
    """p50/p95/mean/max in milliseconds of a list of wall times in seconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        **{f"{k}_ms": v for k, v in percentiles(ms, (50, 95), digits=1).items()},
        "mean_ms": round(float(np.mean(ms)), 1) if ms else None,
        "max_ms": round(max(ms), 1) if ms else None,
    }


# -- benchmark folders ------------------------------------------------------------------------


def copy_tree(src: Path, dst: Path) -> int:
    """Files only, with default permissions (the source may be read-only)."""
    count = 0
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        count += 1
    return count


def needs_sidecar(path: Path, fmt: str) -> bool:
    if fmt == "markdown" or sidecar_path(path).exists():
        return False
    if fmt in TEXT_FORMATS:  # plain text may carry front matter instead
        front, _ = split_front_matter(path.read_text(encoding="utf-8", errors="replace"))
        return front is None
    return True


def write_sidecars(root: Path) -> list[str]:
    written = []
    for source in discover(root)[0]:
        if needs_sidecar(source.path, source.fmt):
            sidecar_path(source.path).write_text(yaml.safe_dump(BENCH_SIDECAR), encoding="utf-8")
            written.append(source.rel)
    return written


def prepare_roots(roots: Sequence[Path], workdir: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    """Copy each root under `workdir/roots/` and give sidecar-less documents a minimal one."""
    copies: list[Path] = []
    notes: list[dict[str, Any]] = []
    for i, root in enumerate(roots):
        if not root.is_dir():
            print(f"note: skipping {root}: not a folder", file=sys.stderr)
            notes.append({"root": str(root), "skipped": "not a folder"})
            continue
        copy = workdir / "roots" / f"{i}-{root.name}"
        files = copy_tree(root, copy)
        sidecars = write_sidecars(copy)
        copies.append(copy)
        notes.append(
            {"root": str(root), "copy": str(copy), "files": files, "sidecars_written": sidecars}
        )
    return copies, notes


# -- plain LlamaIndex baseline ----------------------------------------------------------------


def llama_files(roots: Sequence[Path]) -> tuple[list[Path], list[Path], list[str]]:
    """(PDFs, files SimpleDirectoryReader reads offline, skipped files): the documents our
    pipeline sees (same discovery, sidecars excluded)."""
    has_file_readers = importlib.util.find_spec("llama_index.readers") is not None
    pdfs: list[Path] = []
    texts: list[Path] = []
    skipped: list[str] = []
    for root in roots:
        for source in discover(root)[0]:
            suffix = source.path.suffix.lower()
            if suffix == ".pdf":
                pdfs.append(source.path)
            elif suffix in LLAMA_TEXT_SUFFIXES or has_file_readers:
                texts.append(source.path)
            else:
                skipped.append(f"{root.name}/{source.rel}")
    return pdfs, texts, skipped


def read_pdf_pages(paths: Sequence[Path]) -> list[Any]:
    """One LlamaIndex Document per PDF page, with `file_name` and 1-based `page` metadata."""
    from llama_index.core import Document
    from pypdf import PdfReader

    return [
        Document(text=page.extract_text() or "", metadata={"file_name": p.name, "page": n})
        for p in paths
        for n, page in enumerate(PdfReader(p).pages, start=1)
    ]


def read_other(paths: Sequence[Path]) -> list[Any]:
    from llama_index.core import SimpleDirectoryReader

    if not paths:
        return []
    return list(SimpleDirectoryReader(input_files=[str(p) for p in paths]).load_data())


def load_llama_model(model_path: Path) -> tuple[Any, float]:
    """HuggingFaceEmbedding on the local model folder, warmed; set as LlamaIndex's only model."""
    from llama_index.core import Settings
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    with clock() as elapsed:
        model = HuggingFaceEmbedding(model_name=str(model_path), device="cpu")
        model.get_text_embedding("warm up the model")
    Settings.llm = None
    Settings.embed_model = model
    return model, elapsed().wall


def llama_storage(chroma_dir: Path) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import StorageContext
    from llama_index.vector_stores.chroma import ChromaVectorStore

    client = chromadb.PersistentClient(
        path=str(chroma_dir), settings=ChromaSettings(anonymized_telemetry=False)
    )
    collection = client.create_collection("llamaindex_baseline", embedding_function=None)
    return StorageContext.from_defaults(
        vector_store=ChromaVectorStore(chroma_collection=collection)
    )


@dataclass
class LlamaBaseline:
    """The baseline index over some roots, and what building it took."""

    index: Any  # VectorStoreIndex
    model: Any  # HuggingFaceEmbedding
    model_load_seconds: float
    files: dict[str, Any]
    documents: list[Any]
    nodes: list[Any]
    watch: Stopwatch  # read, split, embed_and_store
    total: Span


def build_llama_baseline(
    model_path: Path, roots: Sequence[Path], chroma_dir: Path
) -> LlamaBaseline:
    """pypdf pages (other files through SimpleDirectoryReader), SentenceSplitter(512, 20),
    HuggingFaceEmbedding on the same local model, ChromaVectorStore, VectorStoreIndex."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    model, load_seconds = load_llama_model(model_path)
    pdfs, others, skipped = llama_files(roots)
    storage = llama_storage(chroma_dir)
    splitter = SentenceSplitter(chunk_size=LLAMA_CHUNK_SIZE, chunk_overlap=LLAMA_CHUNK_OVERLAP)
    watch = Stopwatch()
    with clock() as elapsed:
        with watch.time("read"):
            documents = read_pdf_pages(pdfs) + read_other(others)
        with watch.time("split"):
            nodes = splitter.get_nodes_from_documents(documents)
        with watch.time("embed_and_store"):
            index = VectorStoreIndex(nodes, storage_context=storage)
    files = {"pdf": len(pdfs), "other": len(others), "skipped": skipped}
    return LlamaBaseline(index, model, load_seconds, files, documents, nodes, watch, elapsed())


# -- output -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    align: str = ">"  # format alignment: "<" or ">"


def format_table(columns: Sequence[Column], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A header, a rule as wide as the header, then one line per row (cells as `str()`)."""

    def line(cells: Sequence[Any]) -> str:
        return "".join(
            f"{'' if v is None else v!s:{c.align}{c.width}}"
            for c, v in zip(columns, cells, strict=True)
        )

    header = line([c.title for c in columns])
    return [header, "-" * len(header), *(line(row) for row in rows)]


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
