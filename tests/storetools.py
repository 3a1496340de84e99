"""Helpers for sync tests: a store snapshot to compare, a store that dies mid-run, and an
embedder that remembers the real model's vectors (the model is the same; only repeats are
skipped, to keep property tests fast)."""

from __future__ import annotations

from typing import Any

from index.store import ChromaStore


class Interrupted(Exception):
    """Stands for the process being killed between two writes."""


class InterruptingStore(ChromaStore):
    """The real store over the same collections, raising before the n-th write (1-based)."""

    WRITES = ("put_document", "upsert_chunks", "delete_other_versions", "delete_document")

    def __init__(self, base: ChromaStore, fail_at: int) -> None:
        self.chunks = base.chunks
        self.registry = base.registry
        self._client = base._client
        self._left = fail_at
        self.writes = 0

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name in InterruptingStore.WRITES:

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.writes += 1
                self._left -= 1
                if self._left == 0:
                    raise Interrupted(name)
                return attr(*args, **kwargs)

            return counted
        return attr


class CountingStore(InterruptingStore):
    def __init__(self, base: ChromaStore) -> None:
        super().__init__(base, fail_at=-1)


def snapshot(store: ChromaStore) -> tuple[dict[str, Any], dict[str, Any]]:
    """(registry by doc id, chunks by id) without the ingestion timestamps."""
    registry = {}
    for record in store.documents():
        registry[record.doc_id] = (
            record.meta,
            record.path,
            record.content_hash,
            record.chunk_count,
            record.state,
        )
    got = store.chunks.get(include=["documents", "metadatas"])
    chunks = {
        cid: (text, md)
        for cid, text, md in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
    }
    assert len(chunks) == len(got["ids"]), "duplicate chunk ids"
    return registry, chunks


def assert_consistent(store: ChromaStore, *, killed: bool = False) -> None:
    """No orphans, no mixed versions, counts match the registry.

    `killed`: the store is read right after a process was killed mid-ingest, so a record may be
    left between its "writing" mark and its "ok" (ingest/sync.py): the next sync redoes it. Its
    chunks may then be of its new version, its old one or both, but a reader is still given one
    version, in order."""
    registry, chunks = snapshot(store)
    per_doc: dict[str, int] = {}
    for cid, (_, md) in chunks.items():
        doc_id = md["doc_id"]
        assert doc_id in registry, f"orphan chunk {cid}"
        if killed and registry[doc_id][4] != "ok":
            continue
        assert md["content_hash"] == registry[doc_id][2], f"chunk {cid} of another version"
        per_doc[doc_id] = per_doc.get(doc_id, 0) + 1
    for doc_id, (_, _, _, count, state) in registry.items():
        if killed and state in ("writing", "resync"):
            rows = store.document_chunks(doc_id)
            assert len({md["content_hash"] for _, _, md in rows}) <= 1, f"{doc_id}: mixed versions"
            indexes = [int(md["chunk_index"]) for _, _, md in rows]
            assert indexes == sorted(set(indexes)), f"{doc_id}: chunks out of order"
            continue
        assert state == "ok", f"{doc_id} left in state {state}"
        assert per_doc.get(doc_id, 0) == count, f"{doc_id}: {per_doc.get(doc_id)} != {count}"
