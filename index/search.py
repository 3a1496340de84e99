"""Dense search over the chunks collection, with metadata filters inside the query.

The hybrid retriever (BM25 + dense, fused) builds on this; every path applies the same
`where` clause so that the top-k is drawn only from allowed documents.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from index.embedding import Embedder
from index.errors import InvalidRequestError
from index.records import DocType
from index.store import ChromaStore


@dataclass(frozen=True)
class SearchFilters:
    department: str | None = None
    doc_type: str | None = None

    def where(self) -> dict[str, Any] | None:
        clauses: list[dict[str, Any]] = []
        if self.department:
            clauses.append({"department": self.department})
        if self.doc_type:
            if self.doc_type not in {t.value for t in DocType}:
                allowed = ", ".join(t.value for t in DocType)
                raise InvalidRequestError(
                    "doc_type", f"'{self.doc_type}' is not a document type; use one of {allowed}"
                )
            clauses.append({"doc_type": self.doc_type})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk, as `kb search --json` and `POST /v1/search` show it."""

    chunk_id: str
    doc_id: str
    title: str
    path: str
    page: int | None
    section: str
    score: float
    text: str
    doc_type: str
    department: str
    owner: str
    review_date: str | None
    is_stale: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def hit_from_chroma(
    chunk_id: str, text: str, md: dict[str, Any], score: float, today: dt.date
) -> Hit:
    review = md.get("review_date")
    return Hit(
        chunk_id=chunk_id,
        doc_id=str(md["doc_id"]),
        title=str(md.get("title", "")),
        path=str(md.get("path", "")),
        page=int(md["page"]) if "page" in md else None,
        section=str(md.get("section", "")),
        score=round(score, 4),
        text=text,
        doc_type=str(md.get("doc_type", "")),
        department=str(md.get("department", "")),
        owner=str(md.get("owner", "")),
        review_date=str(review) if review else None,
        is_stale=bool(review) and today > dt.date.fromisoformat(str(review)),
    )


class DenseSearch:
    """Top-k chunks by cosine similarity to the query."""

    def __init__(self, store: ChromaStore, embedder: Embedder) -> None:
        self._store = store
        self._embedder = embedder

    def search(self, query: str, k: int, filters: SearchFilters, today: dt.date) -> list[Hit]:
        if not query.strip():
            raise InvalidRequestError("query", "is empty: type what you are looking for")
        if not 1 <= k <= 100:
            raise InvalidRequestError("k", f"{k} is out of range: ask for 1 to 100 results")
        vector = self._embedder.embed([query])[0]
        rows = self._store.query(vector, k, filters.where())
        return [hit_from_chroma(cid, text, md, score, today) for cid, text, md, score in rows]
