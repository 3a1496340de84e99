"""Governance views of the registry: the documents a principal may read, and the review queue
of documents past their review date, grouped by owner."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from assistant.querylog import DocumentUse
from index.filters import Principal
from index.records import DocumentRecord


def readable(records: list[DocumentRecord], principal: Principal) -> list[DocumentRecord]:
    if principal.admin:
        return records
    return [r for r in records if r.meta.readable_by(principal.groups)]


@dataclass(frozen=True)
class OverdueDocument:
    doc_id: str
    title: str
    path: str
    review_date: dt.date
    days_overdue: int
    doc_type: str
    department: str
    cited: int = 0  # answers that cited it (query log)
    thumbs_down: int = 0  # of those, how many a reader marked down


@dataclass(frozen=True)
class OwnerQueue:
    owner: str
    documents: list[OverdueDocument]


def review_queue(
    records: list[DocumentRecord], today: dt.date, use: dict[str, DocumentUse] | None = None
) -> list[OwnerQueue]:
    """Stale documents by owner, most overdue first; owners with the most overdue first. With
    the query log's `use`, each says how often answers cited it since it was logged."""
    use = use or {}
    by_owner: dict[str, list[OverdueDocument]] = defaultdict(list)
    for record in records:
        meta = record.meta
        review = meta.review_date
        if review is None or not meta.is_stale(today) or meta.status in {"superseded", "retired"}:
            continue
        by_owner[meta.owner].append(
            OverdueDocument(
                doc_id=meta.id,
                title=meta.title,
                path=record.path,
                review_date=review,
                days_overdue=(today - review).days,
                doc_type=meta.doc_type.value,
                department=meta.department,
                cited=use[meta.id].cited if meta.id in use else 0,
                thumbs_down=use[meta.id].thumbs_down if meta.id in use else 0,
            )
        )
    queues = [
        OwnerQueue(owner, sorted(docs, key=lambda d: -d.days_overdue))
        for owner, docs in by_owner.items()
    ]
    return sorted(queues, key=lambda q: (-q.documents[0].days_overdue, q.owner))
