"""Marking a document reviewed: its owner's (or an admin's) sign-off that it is current.

Who may: an admin, or a caller named like the document's `owner`. API keys carry no identity
but their name (api/keys.py), so an owner's key is one created with the owner's name (`kb keys
create --name "Priya Raman"`); names compare ignoring case and spacing. A caller who may not
read the document is told it does not exist, like everywhere else. The command line acts as an
admin: whoever runs it can edit the files too.

The new review date is the date asked for, which must be after today, or else today plus the
document's review interval (its own `review_interval_days`, else its type's usual one,
index/records.py). It is never earlier than the file's own review date: a later date the file
gives stays.

The review takes effect at once and lasts: it is stored (index/reviews.py), so every sync
applies it while the document's content is unchanged; the store's registry record and chunks
are restamped (ChromaStore.restamp_document: chunks, generation, record), so answers, search
results, filters and the review queue all see it; and the audit log records it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace

from assistant.audit import AuditAction, AuditLog
from assistant.review import readable
from index.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from index.filters import Principal
from index.records import DEFAULT_REVIEW_INTERVAL_DAYS, DocumentMeta
from index.reviews import ReviewStore, StoredReview, reviewed
from index.store import ChromaStore

MAX_NOTE_CHARS = 2000


@dataclass(frozen=True)
class Reviewer:
    """Who marks a document reviewed."""

    who: str  # the audit log's `who`: a key id, or "cli:<user>"
    name: str  # compared with the document's owner (a key's name)
    principal: Principal  # what it may read; admin may review anything


@dataclass(frozen=True)
class ReviewResult:
    doc_id: str
    title: str
    owner: str
    last_reviewed: dt.date  # the day of this review
    review_date: dt.date  # due again after this date
    previous_review_date: dt.date | None
    stale: bool
    note: str | None
    reviewed_by: str


def owns(name: str, owner: str) -> bool:
    """Whether a caller of this name is the owner (case and spacing aside)."""

    def canonical(text: str) -> str:
        return " ".join(text.split()).casefold()

    return bool(canonical(name)) and canonical(name) == canonical(owner)


def review_interval(meta: DocumentMeta) -> int:
    """Days a review of this document lasts: its own interval, else its type's usual one."""
    return meta.review_interval_days or DEFAULT_REVIEW_INTERVAL_DAYS[meta.doc_type]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SignOff:
    """Marks documents reviewed in one store, recording each review and auditing it."""

    def __init__(
        self,
        store: ChromaStore,
        reviews: ReviewStore,
        audit: AuditLog,
        today: Callable[[], dt.date],
        clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self._store = store
        self._reviews = reviews
        self._audit = audit
        self._today = today
        self._clock = clock

    def mark_reviewed(
        self,
        doc_id: str,
        reviewer: Reviewer,
        *,
        until: dt.date | None = None,
        note: str | None = None,
    ) -> ReviewResult:
        """Mark `doc_id` reviewed today, due again after `until` (default: today + its review
        interval). NotFoundError for a document the reviewer cannot read,
        PermissionDeniedError for one it neither owns nor administers, InvalidRequestError for
        a date that is not in the future or an overlong note."""
        record = self._store.document(doc_id)
        principal = reviewer.principal
        if record is None or not readable([record], principal):
            raise NotFoundError(f"no document '{doc_id}': check the id with GET /v1/documents")
        meta = record.meta
        if not (principal.admin or owns(reviewer.name, meta.owner)):
            raise PermissionDeniedError(
                f"only its owner ('{meta.owner}') or an admin may mark '{doc_id}' reviewed: "
                f"use a key named like the owner, or an admin key (this key is "
                f"'{reviewer.name}')"
            )
        today = self._today()
        due = self._due(meta, today, until)
        note = _clean_note(note)
        earlier = self._reviews.get(doc_id)
        if earlier is not None and earlier.applies_to(doc_id, record.content_hash):
            file_date = earlier.file_review_date  # the record shows that review, not the file
        else:
            file_date = meta.review_date
        review = StoredReview(
            doc_id=doc_id,
            content_hash=record.content_hash,
            reviewed_on=today,
            review_date=max(due, file_date) if file_date else due,
            file_review_date=file_date,
            note=note,
            reviewed_by=reviewer.who,
            at=self._clock(),
        )
        self._reviews.save(review)  # first: a sync re-applies it if the rest is interrupted
        updated = reviewed(meta, review)
        self._store.restamp_document(replace(record, meta=updated))
        self._audit.append(
            reviewer.who,
            AuditAction.REVIEW,
            doc_id,
            {
                "review_date": review.review_date.isoformat(),
                "previous_review_date": meta.review_date.isoformat() if meta.review_date else None,
                "note": note,
                "content_hash": record.content_hash[:12],
            },
        )
        return ReviewResult(
            doc_id=doc_id,
            title=meta.title,
            owner=meta.owner,
            last_reviewed=today,
            review_date=review.review_date,
            previous_review_date=meta.review_date,
            stale=updated.is_stale(today),
            note=note,
            reviewed_by=reviewer.who,
        )

    @staticmethod
    def _due(meta: DocumentMeta, today: dt.date, until: dt.date | None) -> dt.date:
        interval = review_interval(meta)
        if until is None:
            return today + dt.timedelta(days=interval)
        if until <= today:
            raise InvalidRequestError(
                "review_date",
                f"{until} is not in the future (today is {today}): give a later date, or none "
                f"for today + {interval} days (the review interval of this {meta.doc_type})",
            )
        return until


def _clean_note(note: str | None) -> str | None:
    if note is None or not note.strip():
        return None
    note = note.strip()
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidRequestError(
            "note", f"{len(note)} characters: keep it to {MAX_NOTE_CHARS} (link to longer notes)"
        )
    return note
