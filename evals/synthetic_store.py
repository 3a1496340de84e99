"""A synthetic store for scale measurements: random unit vectors, Zipf-distributed pseudo-words
and metadata built by the product's own record functions, written in batches as an ingest
writes them; the keyword index built over it with its time and memory; and the filter kinds the
latency tables use (none, a department filter, a one-group principal).

Used by evals/bench_retrieval.py (its synthetic section) and evals/bench_growth.py (the growth
table of 10k, 100k and 1M chunks).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import resource
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from evals.benchkit import Stopwatch, TimedProxy, clock
from index.filters import ADMIN, Principal, SearchFilters
from index.keyword import KeywordIndex, Tokenizer
from index.records import (
    Chunk,
    DocType,
    DocumentMeta,
    DocumentRecord,
    Status,
    chunk_id,
    chunk_to_chroma,
)
from index.store import ChromaStore

DEPARTMENTS = ("coe", "customer_service", "finance", "hr", "it", "legal", "marketing", "sales")
STATUSES = (Status.APPROVED, Status.DRAFT, Status.SUPERSEDED, Status.RETIRED)
STATUS_WEIGHTS = (0.85, 0.08, 0.05, 0.02)
SYLLABLES = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]


@dataclass(frozen=True)
class SyntheticSpec:
    chunks: int
    dimension: int
    vocabulary: int = 20_000
    zipf_exponent: float = 1.07
    words_per_chunk: tuple[int, int] = (60, 180)
    chunks_per_doc: int = 25
    batch: int = 5_000
    queries: int = 200
    seed: int = 20261128


@dataclass
class Vocabulary:
    """Pseudo-words in a random frequency order, drawn Zipf-like: p(rank r) ~ 1 / r**s."""

    words: list[str]
    cdf: np.ndarray

    @classmethod
    def make(cls, rng: np.random.Generator, size: int, exponent: float) -> Vocabulary:
        found: set[str] = set()
        while len(found) < size:
            n = int(rng.integers(2, 5))
            found.add("".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), n)))
        words = sorted(found)
        rng.shuffle(words)
        weights = 1.0 / np.arange(1, size + 1) ** exponent
        return cls(words, np.cumsum(weights) / weights.sum())

    def draw(self, rng: np.random.Generator, n: int, skip: int = 0) -> list[str]:
        """n words; `skip` leaves out the most frequent ones."""
        low = self.cdf[skip - 1] if skip else 0.0
        picks = np.searchsorted(self.cdf, rng.uniform(low, 1.0, n), side="right")
        return [self.words[min(int(i), len(self.words) - 1)] for i in picks]

    def text(self, rng: np.random.Generator, n: int) -> str:
        return " ".join(self.draw(rng, n))

    def query(self, rng: np.random.Generator) -> str:
        """3-6 words, drawn like document words but without the 100 most frequent ones."""
        return " ".join(self.draw(rng, int(rng.integers(3, 7)), skip=100))


def synthetic_record(rng: np.random.Generator, vocab: Vocabulary, n: int) -> DocumentRecord:
    department = DEPARTMENTS[int(rng.integers(len(DEPARTMENTS)))]
    roll = rng.random()
    access = ["all"] if roll < 0.7 else [department] if roll < 0.9 else [department, "coe"]
    status = STATUSES[int(rng.choice(len(STATUSES), p=STATUS_WEIGHTS))]
    reviewed = dt.date(2024, 1, 1) + dt.timedelta(days=int(rng.integers(0, 1000)))
    doc_types = list(DocType)
    meta = DocumentMeta(
        id=f"syn-{n:05d}",
        title=vocab.text(rng, int(rng.integers(3, 7))).title(),
        doc_type=doc_types[int(rng.integers(len(doc_types)))],
        department=department,
        owner=f"owner-{int(rng.integers(50))}",
        last_reviewed=reviewed,
        status=status,
        access=access,
        tags=[vocab.words[int(i)] for i in rng.integers(0, 200, 2)],
    )
    digest = f"{rng.integers(2**63):016x}" * 4
    return DocumentRecord(
        meta, f"{department}/syn-{n:05d}.md", "/synthetic", "markdown", digest, 0, dt.datetime.now()
    )


def synthetic_batch(
    rng: np.random.Generator,
    vocab: Vocabulary,
    spec: SyntheticSpec,
    start: int,
    end: int,
    records: list[DocumentRecord] | None = None,
) -> tuple[list[str], np.ndarray, list[str], list[dict[str, Any]]]:
    """Chunks start..end-1 for `store.upsert_chunks`; `records` gets the registry record of
    each document that starts in the batch."""
    ids: list[str] = []
    texts: list[str] = []
    metadatas: list[dict[str, Any]] = []
    record: DocumentRecord | None = None
    for n in range(start, end):
        index = n % spec.chunks_per_doc
        if record is None or index == 0:
            record = synthetic_record(rng, vocab, n // spec.chunks_per_doc)
            if records is not None and index == 0:
                records.append(dataclasses.replace(record, chunk_count=spec.chunks_per_doc))
        text = vocab.text(rng, int(rng.integers(*spec.words_per_chunk)))
        chunk = Chunk(text, section=vocab.text(rng, 2).title())
        ids.append(chunk_id(record.doc_id, record.content_hash, index))
        texts.append(chunk.text)
        metadatas.append(chunk_to_chroma(record, chunk, index))
    vectors = rng.standard_normal((end - start, spec.dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ids, vectors, texts, metadatas


def write_synthetic(
    store: ChromaStore, rng: np.random.Generator, vocab: Vocabulary, spec: SyntheticSpec
) -> dict[str, Any]:
    watch = Stopwatch()
    for start in range(0, spec.chunks, spec.batch):
        end = min(start + spec.batch, spec.chunks)
        with watch.time("generate"):
            batch = synthetic_batch(rng, vocab, spec, start, end)
        with watch.time("upsert_chunks"):
            store.upsert_chunks(*batch)
        if end % 20_000 == 0:
            print(f"  {end} chunks written", file=sys.stderr, flush=True)
    store.bump_generation()
    return {"chunks": store.count_chunks(), "batch": spec.batch, **watch.to_json()}


def rss_mb() -> float:
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]

        return float(psutil.Process().memory_info().rss) / 2**20
    except ImportError:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux), so the next peak is ours."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak RSS (VmHWM): this one's by default, or another's by pid."""
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def memory_probe() -> Iterator[dict[str, Any]]:
    """Fills a dict with RSS before and after the block and its peak growth."""
    found: dict[str, Any] = {}
    before = rss_mb()
    exact = reset_peak_rss()
    peak_before = peak_rss_mb()
    yield found
    after, peak = rss_mb(), peak_rss_mb()
    found.update(
        rss_before_mb=round(before, 1),
        rss_after_mb=round(after, 1),
        peak_growth_mb=round(peak - (before if exact else peak_before), 1),
        method="VmHWM reset through /proc/self/clear_refs"
        if exact
        else "peak RSS difference (a lower bound: an earlier, higher peak hides growth)",
    )


class TimedTokenizer:
    def __init__(self, inner: Tokenizer, watch: Stopwatch) -> None:
        self._inner = inner
        self._watch = watch

    def __call__(self, text: str) -> list[str]:
        with self._watch.time("tokenize"):
            return self._inner(text)


def build_keyword(store: ChromaStore, folder: Path) -> tuple[KeywordIndex, dict[str, Any]]:
    watch = Stopwatch()
    timed_store = cast(ChromaStore, TimedProxy(store, watch, ("chunk_pages",)))
    tokenizer = cast(Tokenizer, TimedTokenizer(Tokenizer(), watch))
    keyword = KeywordIndex(timed_store, folder, tokenizer)
    with memory_probe() as memory, clock() as elapsed:
        keyword.current()
    total = elapsed()
    parts = watch.total(("chunk_pages", "tokenize"))
    build = {
        **total.to_json(),
        "read_chunks_seconds": round(watch.spans["chunk_pages"].wall, 2),
        "tokenize_seconds": round(watch.spans["tokenize"].wall, 2),
        "index_and_save_seconds": round((total - parts).wall, 2),
        "memory": memory,
    }
    with clock() as reload:
        KeywordIndex(store, folder, Tokenizer()).current()
    build["reload_from_disk_seconds"] = round(reload().wall, 2)
    return keyword, build


FilterKind = Callable[[np.random.Generator], tuple[str, Principal, SearchFilters | None]]


def no_filter(rng: np.random.Generator) -> tuple[str, Principal, SearchFilters | None]:
    return "admin", ADMIN, None


def department_filter(rng: np.random.Generator) -> tuple[str, Principal, SearchFilters | None]:
    department = DEPARTMENTS[int(rng.integers(len(DEPARTMENTS)))]
    return department, ADMIN, SearchFilters(departments=(department,))


def group_principal(rng: np.random.Generator) -> tuple[str, Principal, SearchFilters | None]:
    group = DEPARTMENTS[int(rng.integers(len(DEPARTMENTS)))]
    return group, Principal.of(group), None


FILTER_KINDS: dict[str, FilterKind] = {
    "none": no_filter,
    "department": department_filter,
    "one_group": group_principal,
}
