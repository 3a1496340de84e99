"""Stored reviews: an owner's "reviewed, good until <date>" that outlives re-ingestion.

A document's review date comes from its file's metadata. Marking it reviewed (assistant/
signoff.py) changes the store at once, and records the review here, in a small SQLite file
beside the registry (`<KB_DATA_DIR>/reviews.sqlite`), keyed by document id and the content
hash the registry holds for the version that was reviewed. Every sync applies the stored
review over the file's own metadata while that hash is unchanged (ingest/sync.py); once the
file (its sidecar, its defaults, or the pipeline: whatever the hash covers) changes, the
review no longer matches, and the file's metadata wins again.

A review keeps what it was made over: the file's own review date at the time (`file_review_
date`), so that the review date it sets is never earlier than the file's own, and a later
review of the same version replaces an earlier one whether it lengthens or shortens it.
One row per document: the latest review.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from index.records import DocumentMeta

REVIEWS_FILE = "reviews.sqlite"  # under KB_DATA_DIR, beside the store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    doc_id TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    reviewed_on TEXT NOT NULL,
    review_date TEXT NOT NULL,
    file_review_date TEXT,
    note TEXT,
    reviewed_by TEXT NOT NULL,
    at TEXT NOT NULL
)
"""
_COLUMNS = "doc_id, content_hash, reviewed_on, review_date, file_review_date, note, reviewed_by, at"


@dataclass(frozen=True)
class StoredReview:
    """One document version marked reviewed: on `reviewed_on`, good until `review_date`."""

    doc_id: str
    content_hash: str  # the registry's content hash of the version reviewed
    reviewed_on: dt.date  # becomes the document's `last_reviewed`
    review_date: dt.date  # becomes its `review_by`: never earlier than file_review_date
    file_review_date: dt.date | None  # the file's own review date when it was first reviewed
    note: str | None
    reviewed_by: str  # a key id, or "cli:<user>"
    at: dt.datetime

    def applies_to(self, doc_id: str, content_hash: str) -> bool:
        return self.doc_id == doc_id and self.content_hash == content_hash


def reviewed(meta: DocumentMeta, review: StoredReview) -> DocumentMeta:
    """`meta` as the review leaves it: last reviewed on the review's day, due on its date.
    Both are set, so that what the metadata said before (an interval, an explicit date)
    cannot move the new date; applying a review twice changes nothing."""
    return meta.model_copy(
        update={"last_reviewed": review.reviewed_on, "review_by": review.review_date}
    )


def _date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


class ReviewStore:
    """The stored reviews. A connection per call: the service, `kb review` and `kb ingest`
    may use the file at once (SQLite serialises them), and there is nothing to close."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def _connect(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, timeout=10.0)
        db.execute(_SCHEMA)
        return db

    def save(self, review: StoredReview) -> None:
        """Record a review, replacing the document's earlier one."""
        row = (
            review.doc_id,
            review.content_hash,
            review.reviewed_on.isoformat(),
            review.review_date.isoformat(),
            review.file_review_date.isoformat() if review.file_review_date else None,
            review.note,
            review.reviewed_by,
            review.at.isoformat(timespec="seconds"),
        )
        with closing(self._connect()) as db:
            db.execute(f"INSERT OR REPLACE INTO reviews ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", row)

    def get(self, doc_id: str) -> StoredReview | None:
        with closing(self._connect()) as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM reviews WHERE doc_id = ?", (doc_id,))
            found = row.fetchone()
        return _review(found) if found else None

    def all(self) -> dict[str, StoredReview]:
        """Every stored review, by document id (one read per sync)."""
        if not self._path.exists():
            return {}
        with closing(self._connect()) as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM reviews").fetchall()
        return {r[0]: _review(r) for r in rows}


def _review(row: tuple[str, ...]) -> StoredReview:
    return StoredReview(
        doc_id=row[0],
        content_hash=row[1],
        reviewed_on=dt.date.fromisoformat(row[2]),
        review_date=dt.date.fromisoformat(row[3]),
        file_review_date=_date(row[4]),
        note=row[5],
        reviewed_by=row[6],
        at=dt.datetime.fromisoformat(row[7]),
    )
