"""Store integrity: chunks that dense search cannot reach, and chunks and registry that
disagree. (The repair that rebuilds a collection is index/rebuild.py.)

Why it exists: in chromadb 1.5.9 (chroma-core/chroma#7758), after a collection has gone
through many deletes and upserts, a few live records are never returned by `query()`, not
even for their own stored embedding, while `get()` still returns them. Sync replaces
changed documents' chunks on every run, so a long-lived store accumulates that pattern, and a
chunk dense search can never find again goes unnoticed (BM25 still finds it).

`check()` queries every chunk (or a sample) with its own stored embedding: a chunk is
reachable when its id comes back among the K nearest, or when an exact duplicate of it does
(identical texts have identical vectors: K duplicates tie at distance 0 and may fill the K
places in any order, so a tie with itself counts; the text is found either way, and retrieval
collapses duplicates). It also compares the collection with the registry.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from index.collections import (
    find,
    rebuild_name,
    retired_name,
)
from index.records import DocumentRecord

if TYPE_CHECKING:
    from index.store import ChromaStore

K = 10  # a chunk must come back among its own 10 nearest
TIE_DISTANCE = 1e-5  # cosine distance of a float32 vector to itself is 0 up to rounding
PAGE = 500


@dataclass
class CheckReport:
    """What `kb store check --json` prints; the keys are stable."""

    chunks: int  # records in the chunks collection
    documents: int  # records in the registry
    checked: int  # chunks queried with their own embedding
    unreachable: list[str] = field(default_factory=list)  # ids dense search cannot return
    orphans: list[str] = field(default_factory=list)  # chunk ids of no registered version
    missing: list[dict[str, Any]] = field(default_factory=list)  # {doc_id, expected, found}
    writing: list[str] = field(default_factory=list)  # documents an ingest is writing
    leftovers: list[str] = field(default_factory=list)  # collections of an unfinished repair
    requeued: list[str] = field(default_factory=list)  # documents the next ingest rewrites
    repaired: bool = False
    still_unreachable: list[str] = field(default_factory=list)  # after the repair
    orphans_removed: int = 0  # by the repair
    seconds: float = 0.0

    @property
    def needs_rebuild(self) -> bool:
        return bool(self.unreachable or self.leftovers)

    @property
    def ok(self) -> bool:
        """No problem left (what was repaired does not count)."""
        unreachable = self.still_unreachable if self.repaired else self.unreachable
        orphans = len(self.orphans) > self.orphans_removed
        missing = {m["doc_id"] for m in self.missing} - set(self.requeued)
        return not (unreachable or orphans or missing or self.leftovers or self.requeued)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


# -- reachability ---------------------------------------------------------------------------


def unreachable(
    collection: Any, ids: Sequence[str], embeddings: Sequence[Any], *, k: int = K
) -> list[str]:
    """Those of `ids` that a query with their own embedding does not bring back (see the
    module docstring for ties)."""
    total = int(collection.count())
    if not ids or total == 0:
        return []
    found: list[str] = []
    for start in range(0, len(ids), PAGE):
        part = list(ids[start : start + PAGE])
        res = collection.query(
            query_embeddings=np.asarray(embeddings[start : start + PAGE], dtype=np.float32),
            n_results=min(k, total),
            include=["distances"],
        )
        for cid, got, distances in zip(part, res["ids"], res["distances"], strict=True):
            if cid not in got and not any(d <= TIE_DISTANCE for d in distances):
                found.append(cid)
    return found


def unreachable_chunks(store: ChromaStore, ids: Sequence[str], *, k: int = K) -> list[str]:
    """Those of the given chunks (by id) that dense search cannot return."""
    if not ids:
        return []
    got = store.chunks.get(ids=list(ids), include=["embeddings"])
    return unreachable(store.chunks, got["ids"], got["embeddings"], k=k)


# -- check ------------------------------------------------------------------------------------


def check(store: ChromaStore, *, sample: int | None = None, seed: int | None = None) -> CheckReport:
    """Every chunk (or `sample` chunks chosen at random) queried with its own embedding, the
    collection compared with the registry, and leftovers of an unfinished repair listed."""
    started = time.perf_counter()
    registry = {r.doc_id: r for r in store.documents()}
    chunks = store.chunks
    ids: list[str] = []
    metadatas: list[dict[str, Any]] = []
    lost: list[str] = []
    full = sample is None or sample >= store.count_chunks()
    for page in pages(chunks, ["embeddings", "metadatas"] if full else ["metadatas"]):
        ids += page["ids"]
        metadatas += [md or {} for md in page["metadatas"]]
        if full:
            lost += unreachable(chunks, page["ids"], page["embeddings"])
    checked = len(ids)
    if not full:
        chosen = random.Random(seed).sample(ids, min(sample or 0, len(ids)))
        for start in range(0, len(chosen), PAGE):
            lost += unreachable_chunks(store, chosen[start : start + PAGE])
        checked = len(chosen)
    report = CheckReport(
        chunks=len(ids),
        documents=len(registry),
        checked=checked,
        unreachable=sorted(lost),
        leftovers=leftovers(store),
    )
    _compare_with_registry(report, registry, ids, metadatas)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def pages(collection: Any, include: list[str], size: int = PAGE) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        page = collection.get(include=include, limit=size, offset=offset)
        if page["ids"]:
            yield page
        if len(page["ids"]) < size:
            return
        offset += size


def _compare_with_registry(
    report: CheckReport,
    registry: dict[str, DocumentRecord],
    ids: list[str],
    metadatas: list[dict[str, Any]],
) -> None:
    """Orphans: chunks of no registered document version (unknown document, other content
    hash, index past the registered count). Missing: registered documents with fewer chunks
    than the registry records. Documents an ingest is writing are left out of both (the next
    sync completes or removes them) and listed as `writing`."""
    found: Counter[str] = Counter()
    for cid, md in zip(ids, metadatas, strict=True):
        record = registry.get(str(md.get("doc_id")))
        if record is not None and record.state != "ok":
            continue  # being written, or waiting for the next sync to rewrite it
        if (
            record is None
            or md.get("content_hash") != record.content_hash
            or int(md.get("chunk_index", -1)) >= record.chunk_count
        ):
            report.orphans.append(cid)
        else:
            found[record.doc_id] += 1
    for doc_id, record in sorted(registry.items()):
        if record.state == "resync":
            report.requeued.append(doc_id)
        elif record.state != "ok":
            report.writing.append(doc_id)
        elif found[doc_id] < record.chunk_count:
            report.missing.append(
                {"doc_id": doc_id, "expected": record.chunk_count, "found": found[doc_id]}
            )
    report.orphans.sort()


def leftovers(store: ChromaStore) -> list[str]:
    """Collections an unfinished repair left beside the store's two."""
    names = [store.chunks.name, store.registry.name]
    candidates = [f(n) for n in names for f in (rebuild_name, retired_name)]
    return [n for n in candidates if find(store.client, n) is not None]
