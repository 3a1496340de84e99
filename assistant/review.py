"""Governance views of the registry: the documents a principal may read, and the review queue:
documents past their review date, and documents ingested without an owner, grouped by owner and
ranked by urgency (`urgency()`: how overdue, how much answers rely on it, and how many readers
said it is out of date)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, replace

from assistant.querylog import DocumentUse, Gap, QueryLog
from index.filters import Principal
from index.records import UNKNOWN_OWNER, DocumentRecord


def readable(records: list[DocumentRecord], principal: Principal) -> list[DocumentRecord]:
    if principal.admin:
        return records
    return [r for r in records if r.meta.readable_by(principal.groups)]


def visible_gaps(gaps: list[Gap], records: list[DocumentRecord], principal: Principal) -> list[Gap]:
    """The gaps, naming only nearby documents the principal may read: the query log records
    what the asker's access found, which another caller may not see."""
    if principal.admin:
        return gaps
    allowed = {r.doc_id for r in readable(records, principal)}
    return [replace(g, nearby=[d for d in g.nearby if d in allowed]) for g in gaps]


# What "recently" means for urgency: answers and feedback of the last quarter. A document's
# reliance changes with projects and seasons; a quarter covers the cycle of most of them.
RECENT_DAYS = 90
# One reader's thumbs down with reason "outdated" counts like a month overdue: a reader who
# noticed is firmer evidence than the calendar, and a month lifts a document above those
# merely days overdue without burying ones months overdue. A policy choice, not a measurement.
OUTDATED_BOOST_DAYS = 30


def urgency(days_overdue: int, cited_recently: int, outdated: int) -> int:
    """How urgently a queued document needs its review: the days it is overdue, times one plus
    the answers that cited it in the last RECENT_DAYS (a stale document nobody reads can wait;
    one that answers rely on cannot), plus OUTDATED_BOOST_DAYS for each thumbs down with reason
    "outdated" on those answers:

        urgency = days_overdue * (1 + cited_recently) + OUTDATED_BOOST_DAYS * outdated

    A document that is not overdue (it only needs an owner) ranks by its outdated reports."""
    return days_overdue * (1 + cited_recently) + OUTDATED_BOOST_DAYS * outdated


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
    cited_recently: int = 0  # answers that cited it in the last RECENT_DAYS
    outdated: int = 0  # of those, how many a reader marked down as "outdated"
    urgency: int = 0  # urgency(): the queue's order, most urgent first
    owner: str = ""  # the owner it is queued under (repeated for flat exports)


@dataclass(frozen=True)
class OwnerQueue:
    owner: str
    documents: list[QueuedDocument]


def queue_from_log(
    records: list[DocumentRecord], today: dt.date, log: QueryLog
) -> list[OwnerQueue]:
    """The review queue of `records`, with the query log's citation counts (all time, and the
    last RECENT_DAYS for urgency)."""
    ids = [r.doc_id for r in records]
    recent = log.document_use(ids, since=today - dt.timedelta(days=RECENT_DAYS))
    return review_queue(records, today, log.document_use(ids), recent)


def review_queue(
    records: list[DocumentRecord],
    today: dt.date,
    use: dict[str, DocumentUse] | None = None,
    recent: dict[str, DocumentUse] | None = None,
) -> list[OwnerQueue]:
    """Stale documents, and documents that need an owner, by owner: most urgent first (see
    `urgency()`), then most overdue; owners with the most urgent document first. With the
    query log's `use`, each says how often answers cited it since it was logged; `recent` is
    the same for the last RECENT_DAYS, which urgency reads."""
    use = use or {}
    recent = recent or {}
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
        days_overdue = (today - review).days if stale and review else 0
        lately = recent.get(meta.id, DocumentUse(meta.id, 0, 0))
        by_owner[meta.owner].append(
            QueuedDocument(
                doc_id=meta.id,
                title=meta.title,
                path=record.path,
                review_date=review,
                days_overdue=days_overdue,
                doc_type=meta.doc_type.value,
                department=meta.department,
                cited=use[meta.id].cited if meta.id in use else 0,
                thumbs_down=use[meta.id].thumbs_down if meta.id in use else 0,
                needs_owner=needs_owner,
                cited_recently=lately.cited,
                outdated=lately.outdated,
                urgency=urgency(days_overdue, lately.cited, lately.outdated),
                owner=meta.owner,
            )
        )
    queues = [
        OwnerQueue(owner, sorted(docs, key=lambda d: (-d.urgency, -d.days_overdue, d.doc_id)))
        for owner, docs in by_owner.items()
    ]
    return sorted(
        queues, key=lambda q: (-q.documents[0].urgency, -q.documents[0].days_overdue, q.owner)
    )


# The review queue as a table, one row per document (`kb stale --csv`, for owners' reminders).
QUEUE_CSV_COLUMNS = (
    "owner",
    "doc_id",
    "title",
    "path",
    "department",
    "doc_type",
    "review_date",
    "days_overdue",
    "cited",
    "thumbs_down",
    "needs_owner",
    "urgency",
)


def queue_rows(queues: list[OwnerQueue]) -> list[dict[str, str | int | bool]]:
    """One row per queued document, in queue order, with QUEUE_CSV_COLUMNS."""
    return [
        {
            "owner": queue.owner,
            "doc_id": d.doc_id,
            "title": d.title,
            "path": d.path,
            "department": d.department,
            "doc_type": d.doc_type,
            "review_date": d.review_date.isoformat() if d.review_date else "",
            "days_overdue": d.days_overdue,
            "cited": d.cited,
            "thumbs_down": d.thumbs_down,
            "needs_owner": d.needs_owner,
            "urgency": d.urgency,
        }
        for queue in queues
        for d in queue.documents
    ]
