"""A retrieved chunk as every consumer sees it: search results, prompts, citations, evals."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    title: str
    path: str
    page: int | None
    page_end: int | None
    section: str
    score: float  # fused rank score in 0..1 (1 = first in every retriever)
    text: str
    doc_type: str
    department: str
    owner: str
    status: str
    chunk_index: int
    review_date: str | None
    is_stale: bool
    dense_score: float | None = None  # cosine similarity to the query, if the dense path saw it
    keyword_score: float | None = None  # BM25 score, if the keyword path saw it
    context: str | None = None  # the chunk with its neighbours, when asked for (small-to-big)
    project: str | None = None  # project fields of lessons learned, showcases, evaluations
    vendor: str | None = None
    outcome: str | None = None
    year: int | None = None
    supersedes: tuple[str, ...] = ()  # ids of the documents this one replaces

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def with_(self, **changes: Any) -> Hit:
        return replace(self, **changes)


def hit_from_chroma(chunk_id: str, text: str, md: dict[str, Any], today: dt.date) -> Hit:
    review = md.get("review_date")
    return Hit(
        chunk_id=chunk_id,
        doc_id=str(md["doc_id"]),
        title=str(md.get("title", "")),
        path=str(md.get("path", "")),
        page=int(md["page"]) if "page" in md else None,
        page_end=int(md["page_end"]) if "page_end" in md else None,
        section=str(md.get("section", "")),
        score=0.0,
        text=text,
        doc_type=str(md.get("doc_type", "")),
        department=str(md.get("department", "")),
        owner=str(md.get("owner", "")),
        status=str(md.get("status", "")),
        chunk_index=int(md.get("chunk_index", 0)),
        review_date=str(review) if review else None,
        is_stale=bool(review) and today > dt.date.fromisoformat(str(review)),
        project=_text(md.get("project")),
        vendor=_text(md.get("vendor")),
        outcome=_text(md.get("outcome")),
        year=int(md["year"]) if "year" in md else None,
        supersedes=tuple(str(s) for s in _list(md.get("supersedes"))),
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
