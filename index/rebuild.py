"""Rebuild a collection's vector index without losing a record, and mend what a store check
found (index/integrity.py).

`repair()` copies every record of a collection (ids, embeddings, documents, metadata) into a
new collection in batches, verifies the copy record by record (ids, documents and metadata
equal, embeddings equal as float32 up to Chroma's own rounding: `same_vectors`), queries every
record of the copy with its own embedding, and swaps the copy in under the same name with a
new generation token (index/collections.py: the crash-safe swap). A fresh index holds live
records only; the records found unreachable are inserted last, so that no later insertion can
prune the links that lead to them, and the few a fresh index misses on hard data (plain HNSW
recall) are inserted once more.

A repair must not run beside an ingest: it refuses to start while a document is being written
and gives up, changing nothing, if the registry or the collection changed during the copy.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from index.collections import (
    COPYING,
    REBUILD_KEY,
    REBUILT_FROM_KEY,
    VERIFIED,
    Step,
    drop,
    find,
    metadata,
    rebuild_name,
    rename,
    retired_name,
    settle,
)
from index.errors import StoreError
from index.integrity import CheckReport, check, leftovers, pages, unreachable

if TYPE_CHECKING:
    from index.store import ChromaStore

COPY_BATCH = 5000  # Chroma refuses single writes above 5,461 records
ULPS = 2  # float32 units in the last place a copied embedding may differ by (same_vectors)
Which = Literal["chunks", "documents"]


@dataclass(frozen=True)
class RepairResult:
    collection: str
    copied: int
    touched_up: int  # records the fresh index missed too, inserted again
    still_unreachable: list[str]
    generation: str
    seconds: float


def check_and_repair(
    store: ChromaStore, *, sample: int | None = None, seed: int | None = None
) -> CheckReport:
    """`check()`, then, if chunks are unreachable or a repair was left unfinished, `repair()`
    the chunks collection and report what is still unreachable."""
    report = check(store, sample=sample, seed=seed)
    started = time.perf_counter()
    if report.needs_rebuild:
        result = repair(store, late=report.unreachable)
        report.repaired = True
        report.still_unreachable = result.still_unreachable
        report.leftovers = leftovers(store)
    _mend_registry_mismatches(store, report)
    report.seconds = round(report.seconds + time.perf_counter() - started, 3)
    return report


def _mend_registry_mismatches(store: ChromaStore, report: CheckReport) -> None:
    """Chunks of no registered version are deleted (no answer can cite them correctly: their
    text is not what the document says now); documents missing chunks are marked for the
    next sync to rewrite from their files ("resync"), as an interrupted write would be."""
    if report.orphans:
        store.delete_chunks(report.orphans)
        report.orphans_removed = len(report.orphans)
        store.bump_generation()
    missing = [m["doc_id"] for m in report.missing]
    if missing:
        store.mark_for_resync(missing)
        report.requeued = sorted({*report.requeued, *missing})


# -- repair -----------------------------------------------------------------------------------


class _CopyMismatch(Exception):
    pass


def repair(
    store: ChromaStore,
    *,
    which: Which = "chunks",
    late: Sequence[str] = (),
    batch: int = COPY_BATCH,
    step: Step | None = None,
) -> RepairResult:
    """Rebuild one collection's vector index by copying it, and swap the copy in (module
    docstring). `late`: ids to insert last (those `check()` found unreachable); the copy is
    swapped in only if fewer of its records are unreachable. `step` is called with the name of
    each step before it runs (progress). Raises StoreError, changing nothing, if the copy
    differs, does not help, or the store changed meanwhile."""
    step = step or _no_step
    started = time.perf_counter()
    client = store.client
    name = (store.chunks if which == "chunks" else store.registry).name
    _clear_leftovers(client, name)
    before = _fingerprint(store)
    source = find(client, name)
    if source is None:
        raise StoreError(f"the Chroma collection {name} does not exist")
    step("create")
    copy = client.create_collection(
        rebuild_name(name),
        configuration=_configuration(source),
        metadata={**metadata(source), REBUILD_KEY: COPYING, REBUILT_FROM_KEY: str(source.id)},
        embedding_function=None,
    )
    try:
        copied = _copy(source, copy, late, batch, step)
        step("verify")
        still, touched = _reach_every_record(copy, copied, step)
        _verify_ids(copy, copied, int(source.count()))
    except _CopyMismatch as exc:
        drop(client, copy.name)
        raise StoreError(
            f"the copy of {name} is not identical ({exc}): nothing was changed"
        ) from exc
    if late and len(still) >= len(late):
        drop(client, copy.name)
        raise StoreError(
            f"a rebuilt index of {name} leaves {len(still)} records unreachable, no fewer than "
            f"the {len(late)} found before: nothing was changed"
        )
    if _fingerprint(store) != before:
        drop(client, copy.name)
        raise StoreError(
            f"the store changed while {name} was being copied (an ingest ran?): nothing was "
            "changed; repair again when no ingest is running"
        )
    step("mark verified")
    copy.modify(metadata={**metadata(copy), REBUILD_KEY: VERIFIED})
    step("retire")
    rename(client, source, retired_name(name))
    settle(client, name, step)  # promote, finish (new generation), drop the retired one
    store.rebind()
    generation = store.generation() if which == "chunks" else store.bump_generation()
    return RepairResult(
        collection=name,
        copied=len(copied),
        touched_up=touched,
        still_unreachable=sorted(still),
        generation=generation,
        seconds=round(time.perf_counter() - started, 3),
    )


def _clear_leftovers(client: Any, name: str) -> None:
    """Finish or undo an interrupted swap; delete a copy an interrupted repair left (never run
    two repairs at once)."""
    settle(client, name)
    drop(client, rebuild_name(name))
    if find(client, retired_name(name)) is not None:
        raise StoreError(
            f"collection {retired_name(name)} exists but {name} was not rebuilt from it: "
            "inspect it, and delete it if it is not needed, before repairing"
        )


def _fingerprint(store: ChromaStore) -> tuple[Any, ...]:
    """What a concurrent ingest would change: the registry, the generation, the counts."""
    records = store.documents()
    writing = sorted(r.doc_id for r in records if r.state == "writing")
    if writing:
        raise StoreError(
            f"document {writing[0]} is being written (an ingest is running, or one was "
            "interrupted): run `kb ingest` first, then repair"
        )
    registry = sorted((r.doc_id, r.content_hash, r.ingested_at.isoformat()) for r in records)
    return (tuple(registry), store.generation(), store.count_chunks())


def _configuration(source: Any) -> dict[str, Any]:
    """The source's index configuration (space and HNSW parameters), for its copy."""
    config = dict(getattr(source, "configuration_json", None) or {})
    return {key: config[key] for key in ("hnsw", "spann") if config.get(key)}


def _copy(source: Any, copy: Any, late: Sequence[str], batch: int, step: Step) -> set[str]:
    """Copy every record, `late` ones last, each batch read back and compared."""
    include = ["embeddings", "documents", "metadatas"]
    held_back = set(late)
    copied: set[str] = set()
    for page in pages(source, include, size=batch):
        keep = [i for i, cid in enumerate(page["ids"]) if cid not in held_back]
        step("copy")
        _add_verified(copy, {key: _take(page[key], keep) for key in ("ids", *include)}, copied)
    if held_back:
        step("copy")
        _add_verified(copy, source.get(ids=sorted(held_back), include=include), copied)
    return copied


def _reach_every_record(copy: Any, copied: set[str], step: Step) -> tuple[list[str], int]:
    """Query every record of the copy with its own embedding. A fresh index can miss a few
    records of hard data too (plain HNSW recall, not the bug): those are deleted and added
    again, last, once. Returns (ids still unreachable, ids added again)."""
    lost: list[str] = []
    for page in pages(copy, ["embeddings"]):
        lost += unreachable(copy, page["ids"], page["embeddings"])
    if not lost:
        return [], 0
    step("touch up")
    again = copy.get(ids=lost, include=["embeddings", "documents", "metadatas"])
    copy.delete(ids=lost)
    copied.difference_update(lost)
    _add_verified(copy, again, copied)
    return unreachable(copy, again["ids"], again["embeddings"]), len(lost)


def _take(values: Any, keep: list[int]) -> list[Any]:
    return [values[i] for i in keep]


def _add_verified(copy: Any, page: dict[str, Any], copied: set[str]) -> None:
    ids = list(page["ids"])
    if not ids:
        return
    if copied.intersection(ids) or len(set(ids)) != len(ids):
        raise _CopyMismatch("a record was read twice: the source changed during the copy")
    embeddings = np.asarray(page["embeddings"], dtype=np.float32)
    copy.add(
        ids=ids,
        embeddings=embeddings,
        documents=list(page["documents"]),
        metadatas=list(page["metadatas"]),
    )
    back = copy.get(ids=ids, include=["embeddings", "documents", "metadatas"])
    order = {cid: i for i, cid in enumerate(back["ids"])}
    if set(order) != set(ids):
        raise _CopyMismatch(f"{len(set(ids) - set(order))} records did not arrive")
    index = [order[cid] for cid in ids]
    if not same_vectors(np.asarray(back["embeddings"], dtype=np.float32)[index], embeddings):
        raise _CopyMismatch("an embedding differs")
    if [back["documents"][i] for i in index] != list(page["documents"]):
        raise _CopyMismatch("a document differs")
    if [back["metadatas"][i] for i in index] != list(page["metadatas"]):
        raise _CopyMismatch("a metadata record differs")
    copied.update(ids)


def same_vectors(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal float32 vectors, up to what a trip through Chroma changes: in cosine space it
    hands back the stored vector re-scaled from its normalised copy, which moves a component
    by at most one unit in the last place (measured on 1.5.9); `ULPS` allows two."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        return False
    step = np.spacing(np.maximum(np.abs(a), np.abs(b)))
    return bool(np.all(np.abs(a - b) <= ULPS * step))


def _verify_ids(copy: Any, copied: set[str], source_count: int) -> None:
    held = {cid for page in pages(copy, [], size=COPY_BATCH) for cid in page["ids"]}
    if held != copied or len(copied) != source_count or int(copy.count()) != source_count:
        raise _CopyMismatch(
            f"the copy holds {len(held)} records, {len(copied)} were copied, "
            f"the source holds {source_count}"
        )


def _no_step(_: str) -> None:
    return None
