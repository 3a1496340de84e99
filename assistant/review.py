"""Governance views of the registry: the documents a principal may read, and the review queue:
documents past their review date, and documents ingested without an owner, grouped by owner."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from assistant.querylog import DocumentUse
from index.filters import Principal
from index.records import UNKNOWN_OWNER, DocumentRecord


def readable(records: list[DocumentRecord], principal: Principal) -> list[DocumentRecord]:
    if principal.admin:
        return records
    return [r for r in records if r.meta.readable_by(principal.groups)]


@dataclass(frozen=True)
class QueuedDocument:
    doc_id: str
    title: str
    path: str
    review_date: dt.date | None  # None: never reviewed
    days_overdue: int  # 0 when not past its review date
    doc_type: str
    department: str
    cited: int = 0  # answers that cited it (query log)
    thumbs_down: int = 0  # of those, how many a reader marked down
    needs_owner: bool = False  # ingested without an owner (owner "unknown"): name one


@dataclass(frozen=True)
class OwnerQueue:
    owner: str
    documents: list[QueuedDocument]


def review_queue(
    records: list[DocumentRecord], today: dt.date, use: dict[str, DocumentUse] | None = None
) -> list[OwnerQueue]:
    """Stale documents, and documents that need an owner, by owner: most overdue first, then
    those that need an owner; owners with the most overdue first. With the query log's `use`,
    each says how often answers cited it since it was logged."""
    use = use or {}
    by_owner: dict[str, list[QueuedDocument]] = defaultdict(list)
    for record in records:
        meta = record.meta
        if meta.status in {"superseded", "retired"}:
            continue
        review = meta.review_date
        stale = review is not None and meta.is_stale(today)
        needs_owner = meta.owner == UNKNOWN_OWNER
        if not (stale or needs_owner):
            continue
        by_owner[meta.owner].append(
            QueuedDocument(
                doc_id=meta.id,
                title=meta.title,
                path=record.path,
                review_date=review,
                days_overdue=(today - review).days if stale and review else 0,
                doc_type=meta.doc_type.value,
                department=meta.department,
                cited=use[meta.id].cited if meta.id in use else 0,
                thumbs_down=use[meta.id].thumbs_down if meta.id in use else 0,
                needs_owner=needs_owner,
            )
        )
    queues = [
        OwnerQueue(owner, sorted(docs, key=lambda d: (-d.days_overdue, d.doc_id)))
        for owner, docs in by_owner.items()
    ]
    return sorted(queues, key=lambda q: (-q.documents[0].days_overdue, q.owner))
