"""The Chroma store: a chunks collection and a document registry collection.

Embedded (`PersistentClient` in a folder) by default; the same class talks to a `chroma run`
server through `HttpClient` when a host is given. Embeddings are always passed in: Chroma's
own embedding function would download a model.

The registry holds one record per document (metadata, content hash, chunk count, state), with
the document's mean chunk vector as its embedding ("similar documents"). A generation token in
the chunks collection's metadata changes on every write, so any process can tell that the
collection changed under it (derived indexes rebuild on that).

A collection can be replaced by a rebuilt copy under the same name (`kb store check --repair`,
index/rebuild.py; the swap protocol is in index/collections.py). Opening the store finishes
or undoes a swap that was interrupted; a store that was open during a swap follows it: the
generation check rebinds to the collection now live under the name, and an operation on a
collection that was swapped out and deleted rebinds and runs again.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np

from index.collections import (
    GENERATION_KEY,
    REBUILT_FROM_KEY,
    find,
    is_gone,
    open_collection,
    settle,
)
from index.errors import StoreError
from index.records import DocumentRecord, meta_to_chroma

MAX_BATCH = 5000  # Chroma refuses single writes above 5,461 records
# Defaults of `open`, which the KB_CHROMA_PORT / KB_*_COLLECTION settings read (api/settings.py).
CHROMA_PORT = 8001  # not Chroma's own 8000: that is `kb serve`'s port
CHUNKS_COLLECTION = "kb_chunks"
DOCUMENTS_COLLECTION = "kb_documents"
# Candidates the HNSW graph search keeps (Chroma's default is 100). At 100 the 50 nearest
# chunks of the shipped corpus (846 chunks) missed 16 of the exact ones over 127 questions,
# and differed between two processes reading the same store (Chroma's local segment rebuilds
# its graph from its log on load), so one question could get different sources after a
# restart; at 500 none were missed and every process agreed, at no measurable cost on 20,000
# chunks (evals/README.md, "Exact nearest chunks").
SEARCH_EF = 500
COSINE: dict[str, Any] = {"hnsw": {"space": "cosine", "ef_search": SEARCH_EF}}
_PAGE = 1000

__all__ = [
    "CHROMA_PORT",
    "CHUNKS_COLLECTION",
    "DOCUMENTS_COLLECTION",
    "GENERATION_KEY",
    "MAX_BATCH",
    "ChromaServer",
    "ChromaStore",
]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class ChromaServer:
    """Where a Chroma server is and how to reach it (`chroma run`, a gateway in front of one,
    or a managed Chroma service): the settings `KB_CHROMA_*` give."""

    host: str
    port: int = CHROMA_PORT
    ssl: bool = False
    auth_token: str | None = field(default=None, repr=False)
    auth_header: str = "Authorization"
    tenant: str = "default_tenant"
    database: str = "default_database"

    def headers(self) -> dict[str, str]:
        """The header carrying the token: `Authorization: Bearer <token>`, or the token itself
        in any other header (Chroma's `X-Chroma-Token`)."""
        if not self.auth_token:
            return {}
        if self.auth_header.lower() == "authorization":
            return {"Authorization": f"Bearer {self.auth_token}"}
        return {self.auth_header: self.auth_token}

    def __str__(self) -> str:
        return f"{'https' if self.ssl else 'http'}://{self.host}:{self.port}"


def _client(path: Path | None, server: ChromaServer | None) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    try:
        if server is not None:
            return chromadb.HttpClient(
                host=server.host,
                port=server.port,
                ssl=server.ssl,
                headers=server.headers(),
                settings=settings,
                tenant=server.tenant,
                database=server.database,
            )
        if path is None:
            return chromadb.EphemeralClient(settings=settings)
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    except Exception as exc:
        where = f"server {server}" if server else f"folder {path}"
        raise StoreError(
            f"cannot open the Chroma store at {where}: {_without(exc, server)}"
        ) from exc


def _without(exc: Exception, server: ChromaServer | None) -> str:
    """The error's text with the server's token blanked out, should a message quote it."""
    text = str(exc)
    if server is not None and server.auth_token:
        text = text.replace(server.auth_token, "***")
    return text


def _follows_swaps(
    method: Callable[Concatenate[ChromaStore, P], R],
) -> Callable[Concatenate[ChromaStore, P], R]:
    """Run `method` again, once, on the live collections if the ones it used were swapped out
    and deleted by a repair (every store operation is idempotent, so a retry is safe)."""

    @functools.wraps(method)
    def wrapper(self: ChromaStore, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            if not is_gone(exc):
                raise
            self.rebind()
            return method(self, *args, **kwargs)

    return wrapper


def _searched_widely(collection: Any) -> Any:
    """The collection, its search breadth raised to SEARCH_EF if it was made with less (a
    store written by an earlier version)."""
    hnsw = (getattr(collection, "configuration_json", None) or {}).get("hnsw") or {}
    if int(hnsw.get("ef_search") or 0) < SEARCH_EF:
        collection.modify(configuration={"hnsw": {"ef_search": SEARCH_EF}})
    return collection


class ChromaStore:
    """Chunks and the document registry, in two Chroma collections."""

    def __init__(self, client: Any, chunks_name: str, documents_name: str) -> None:
        self._client = client
        self.chunks = _searched_widely(open_collection(client, chunks_name, COSINE))
        self.registry = open_collection(client, documents_name, COSINE)

    @classmethod
    def open(
        cls,
        *,
        path: Path | None,
        server: ChromaServer | None = None,
        chunks_name: str = CHUNKS_COLLECTION,
        documents_name: str = DOCUMENTS_COLLECTION,
    ) -> ChromaStore:
        """The store in the folder `path` (in memory when None), or on `server` when given."""
        return cls(_client(None if server else path, server), chunks_name, documents_name)

    @property
    def client(self) -> Any:
        """The Chroma client (for index/rebuild.py, which copies collections)."""
        return self._client

    def rebind(self) -> None:
        """Use the collections now live under this store's names (after a repair swapped one
        in: the old handles point at a collection that was renamed, then deleted)."""
        self.chunks = _searched_widely(self._live(self.chunks.name))
        self.registry = self._live(self.registry.name)

    def _live(self, name: str) -> Any:
        live = find(self._client, name)
        if live is None:  # between the two renames of a swap: finish it
            settle(self._client, name)
            live = find(self._client, name)
        if live is None:
            raise StoreError(f"the Chroma collection {name} does not exist any more")
        return live

    def heartbeat(self) -> None:
        """Raise StoreError unless the store answers."""
        try:
            self._client.heartbeat()
        except Exception as exc:
            raise StoreError(f"the Chroma store does not answer: {exc}") from exc

    # -- generation -------------------------------------------------------------------------

    def generation(self) -> str:
        """Changes whenever this or another process writes; compare, never order. Also
        notices a repaired collection swapped in under the name, and uses it from then on."""
        fresh = self._live(self.chunks.name)
        if fresh.id != self.chunks.id:
            self.rebind()
        return str((fresh.metadata or {}).get(GENERATION_KEY, "0"))

    def bump_generation(self) -> str:
        token = uuid.uuid4().hex
        fresh = self._live(self.chunks.name)
        kept = {k: v for k, v in (fresh.metadata or {}).items() if k == REBUILT_FROM_KEY}
        fresh.modify(metadata={**kept, GENERATION_KEY: token})
        return token

    # -- registry ---------------------------------------------------------------------------

    @_follows_swaps
    def documents(self) -> list[DocumentRecord]:
        return [DocumentRecord.from_chroma(i, md) for i, md in self._registry_pages()]

    def _registry_pages(self) -> Iterator[tuple[str, dict[str, Any]]]:
        offset = 0
        while True:
            page = self.registry.get(include=["metadatas"], limit=_PAGE, offset=offset)
            yield from zip(page["ids"], page["metadatas"], strict=True)
            if len(page["ids"]) < _PAGE:
                return
            offset += _PAGE

    @_follows_swaps
    def document(self, doc_id: str) -> DocumentRecord | None:
        got = self.registry.get(ids=[doc_id], include=["metadatas"])
        if not got["ids"]:
            return None
        return DocumentRecord.from_chroma(got["ids"][0], got["metadatas"][0])

    @_follows_swaps
    def put_document(self, record: DocumentRecord, embedding: np.ndarray) -> None:
        self.registry.upsert(
            ids=[record.doc_id],
            embeddings=[embedding.astype(np.float32).tolist()],
            metadatas=[record.to_chroma()],
        )

    @_follows_swaps
    def mark_for_resync(self, doc_ids: Sequence[str]) -> None:
        """Set the registry records' state to "resync": the next sync rewrites those documents
        even though their files did not change (their metadata is otherwise kept)."""
        if not doc_ids:
            return
        got = self.registry.get(ids=list(doc_ids), include=["metadatas"])
        metadatas = [{**(md or {}), "state": "resync"} for md in got["metadatas"]]
        self.registry.update(ids=got["ids"], metadatas=metadatas)

    @_follows_swaps
    def restamp_document(self, record: DocumentRecord) -> int:
        """Write `record`'s metadata over its version's chunks and its registry entry, when
        the metadata changed but the content did not (a review: index/reviews.py). In the
        order a sync writes: the chunks first, in one write for a document of up to MAX_BATCH
        chunks, so a search sees such a document all old or all new; then a new generation, so
        derived indexes (which copy chunk metadata) rebuild; the registry record last, so a
        record that shows the new metadata means its chunks have it. A crash in between
        leaves a record that disagrees with its stored review, which the next sync restamps.
        Returns the number of chunks restamped."""
        version = [{"doc_id": record.doc_id}, {"content_hash": record.content_hash}]
        got = self.chunks.get(where={"$and": version}, include=["metadatas"])
        fields = meta_to_chroma(record.meta)
        ids = list(got["ids"])
        metadatas = [{**(md or {}), **fields} for md in got["metadatas"]]
        for start in range(0, len(ids), MAX_BATCH):
            end = start + MAX_BATCH
            self.chunks.update(ids=ids[start:end], metadatas=metadatas[start:end])
        self.bump_generation()
        self.registry.update(ids=[record.doc_id], metadatas=[record.to_chroma()])
        return len(ids)

    @_follows_swaps
    def delete_chunks(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), MAX_BATCH):
            self.chunks.delete(ids=list(ids[start : start + MAX_BATCH]))

    @_follows_swaps
    def delete_document(self, doc_id: str) -> None:
        """Chunks first, registry record last: a crash in between leaves a record that the
        next sync removes again, never chunks without a record."""
        self.chunks.delete(where={"doc_id": doc_id})
        self.registry.delete(ids=[doc_id])

    # -- chunks -----------------------------------------------------------------------------

    @_follows_swaps
    def upsert_chunks(
        self,
        ids: Sequence[str],
        embeddings: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        for start in range(0, len(ids), MAX_BATCH):
            end = start + MAX_BATCH
            self.chunks.upsert(
                ids=list(ids[start:end]),
                embeddings=embeddings[start:end],
                documents=list(texts[start:end]),
                metadatas=list(metadatas[start:end]),
            )

    @_follows_swaps
    def delete_other_versions(self, doc_id: str, content_hash: str) -> None:
        """Remove a document's chunks that belong to any content but `content_hash`."""
        self.chunks.delete(
            where={"$and": [{"doc_id": doc_id}, {"content_hash": {"$ne": content_hash}}]}
        )

    @_follows_swaps
    def count_chunks(self) -> int:
        return int(self.chunks.count())

    @_follows_swaps
    def document_chunks(self, doc_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(id, text, metadata) of one document's chunks, in document order: of one version,
        the registry's, when a sync is between writing a new version and deleting the old
        (or was killed there: ingest/sync.py)."""
        got = self.chunks.get(where={"doc_id": doc_id}, include=["documents", "metadatas"])
        rows = list(zip(got["ids"], got["documents"], got["metadatas"], strict=True))
        if len({row[2].get("content_hash") for row in rows}) > 1:
            record = self.document(doc_id)
            current = [
                row for row in rows if record and row[2].get("content_hash") == record.content_hash
            ]
            rows = current or [
                row for row in rows if row[2].get("content_hash") == rows[0][2].get("content_hash")
            ]
        return sorted(rows, key=lambda row: int(row[2].get("chunk_index", 0)))

    def all_chunks(self) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """Every chunk's id, text and metadata (for audits of small stores; derived indexes
        read `chunk_pages()`)."""
        ids: list[str] = []
        texts: list[str] = []
        metadatas: list[dict[str, Any]] = []
        for page_ids, page_texts, page_metadatas in self.chunk_pages():
            ids.extend(page_ids)
            texts.extend(page_texts)
            metadatas.extend(page_metadatas)
        return ids, texts, metadatas

    def chunk_pages(
        self, size: int = _PAGE * 5
    ) -> Iterator[tuple[list[str], list[str], list[dict[str, Any]]]]:
        """Every chunk's id, text and metadata, a page at a time, so a reader of a large store
        holds one page of text at once."""
        offset = 0
        while True:
            page = self._chunk_page(offset, size)
            yield page
            if len(page[0]) < size:
                return
            offset += size

    @_follows_swaps
    def _chunk_page(
        self, offset: int, size: int
    ) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        page = self.chunks.get(include=["documents", "metadatas"], limit=size, offset=offset)
        return page["ids"], [t or "" for t in page["documents"]], list(page["metadatas"])

    @_follows_swaps
    def get_chunks(self, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """Text and metadata of the given chunks, by id (missing ids are left out)."""
        if not ids:
            return {}
        got = self.chunks.get(ids=list(ids), include=["documents", "metadatas"])
        return {
            cid: (text or "", md)
            for cid, text, md in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        }

    @_follows_swaps
    def nearest(
        self, embedding: np.ndarray, k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        """Top-k chunks as (id, cosine similarity), best first: `query` without reading their
        text and metadata, which is most of its time (50 of 846 chunks: 0.8 ms against 6.8)."""
        if k <= 0:
            return []
        res = self.chunks.query(
            query_embeddings=[embedding.astype(np.float32).tolist()],
            n_results=k,
            where=where or None,
            include=["distances"],
        )
        return [
            (cid, 1.0 - float(dist))
            for cid, dist in zip(res["ids"][0], res["distances"][0], strict=True)
        ]

    @_follows_swaps
    def query(
        self, embedding: np.ndarray, k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, str, dict[str, Any], float]]:
        """Top-k chunks as (id, text, metadata, cosine similarity), best first."""
        if k <= 0:
            return []
        res = self.chunks.query(
            query_embeddings=[embedding.astype(np.float32).tolist()],
            n_results=k,
            where=where or None,
            include=["documents", "metadatas", "distances"],
        )
        return [
            (cid, text or "", md, 1.0 - float(dist))
            for cid, text, md, dist in zip(
                res["ids"][0],
                res["documents"][0],
                res["metadatas"][0],
                res["distances"][0],
                strict=True,
            )
        ]
