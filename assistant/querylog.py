"""The query log: every answer given (question, who asked, what was cited, refused or not,
how relevant its best source was, latency) and the feedback on it, in a small SQLite file
under `KB_DATA_DIR`.

It is what governance reads: how often each document is cited (the review queue ranks stale
documents people actually rely on), which questions the base could not answer (the
knowledge-gap report, and its clusters by topic, which add the answers given on weak evidence:
assistant/gap_clusters.py), how many answers citing each document readers marked down (the
review queue again, whose urgency also counts thumbs down given for being "outdated"), and
questions a day, refusals and thumbs down over a period (knowledge-base health,
assistant/kb_health.py). The comment given with feedback is stored for whoever investigates:
`kb eval triage` turns thumbs down, with their reason and comment, into candidate evaluation
cases (evals/triage.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from assistant.service import Answer
from index.errors import NotFoundError


class Rating(StrEnum):
    UP = "up"
    DOWN = "down"


class FeedbackReason(StrEnum):
    WRONG_SOURCE = "wrong_source"
    OUTDATED = "outdated"
    INCOMPLETE = "incomplete"
    OTHER = "other"


@dataclass(frozen=True)
class Asker:
    """Who asked, as the log records it: a key id (or `cli`), and the groups it read as."""

    id: str
    groups: tuple[str, ...] = ()
    admin: bool = False


@dataclass(frozen=True)
class Gap:
    """A question the base could not answer, with how often it was asked."""

    question: str
    times_asked: int
    last_asked: str
    reasons: list[str]
    nearby: list[str]


@dataclass(frozen=True)
class GapQuestion:
    """One answer the gap clusters read (assistant/gap_clusters.py): a refusal, or an answer
    given on weak evidence."""

    question: str  # the standalone question (a follow-up rewritten to stand alone)
    at: str
    asker: str
    groups: tuple[str, ...]  # the groups it read as; ("admin",) for an administrator
    refused: bool
    relevance: float | None  # best dense similarity of the sources; None in older logs
    cited: tuple[str, ...] = ()  # the documents the answer cited


@dataclass(frozen=True)
class AnswerStats:
    """Answers given over a period, how many were refusals, and the feedback on them."""

    answers: int
    refused: int
    rated: int  # answers that got any feedback
    thumbs_down: int  # answers that got a thumbs down


@dataclass(frozen=True)
class ThumbsDown:
    """A thumbs down and what the log keeps of the answer it rates (not the answer's text:
    the log stores no answer text), for triage into evaluation cases (`kb eval triage`)."""

    answer_id: str
    at: str  # when the feedback was given
    question: str  # as asked
    standalone: str  # rewritten to stand alone (a follow-up), what was answered
    groups: tuple[str, ...]  # the groups it read as; ("admin",) for an administrator
    refused: bool
    refusal_reason: str | None
    cited: tuple[str, ...]  # the documents the answer cited
    generator: str
    reason: str | None  # a FeedbackReason value
    comment: str | None


@dataclass(frozen=True)
class DocumentUse:
    doc_id: str
    cited: int
    thumbs_down: int
    outdated: int = 0  # of the thumbs down, those with reason "outdated"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    answer_id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    asker TEXT NOT NULL,
    groups TEXT NOT NULL,
    route TEXT NOT NULL,
    question TEXT NOT NULL,
    standalone TEXT NOT NULL,
    refused INTEGER NOT NULL,
    refusal_reason TEXT,
    cited TEXT NOT NULL,
    stale_cited INTEGER NOT NULL,
    nearby TEXT NOT NULL,
    generator TEXT NOT NULL,
    latency_ms REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_refused ON answers (refused, at);
CREATE TABLE IF NOT EXISTS citations (
    answer_id TEXT NOT NULL REFERENCES answers (answer_id),
    doc_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS citations_doc ON citations (doc_id);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id TEXT NOT NULL REFERENCES answers (answer_id),
    at TEXT NOT NULL,
    asker TEXT NOT NULL,
    rating TEXT NOT NULL,
    reason TEXT,
    comment TEXT
);
CREATE INDEX IF NOT EXISTS feedback_answer ON feedback (answer_id);
"""

# Columns added after the first release, each with the statement that adds it to an older log
# (applied once when the log is opened, so logs written before it stay readable: their rows
# read the column as NULL). `relevance`: the best dense similarity of the answer's sources,
# what the refusal gate reads, which tells an answer given on weak evidence (gap clusters).
_ADDED_COLUMNS = (("relevance", "ALTER TABLE answers ADD COLUMN relevance REAL"),)
_ANSWER_COLUMNS = (
    "answer_id, at, asker, groups, route, question, standalone, refused, refusal_reason, "
    "cited, stale_cited, nearby, generator, latency_ms, relevance"
)

_SPACES = re.compile(r"\s+")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def normalise_question(question: str) -> str:
    """The same question, case, spacing and closing punctuation aside."""
    return _SPACES.sub(" ", question.strip().lower()).rstrip("?!. ")


class QueryLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")  # the CLI and the service may share it
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        present = {row[1] for row in self._db.execute("PRAGMA table_info(answers)")}
        for column, statement in _ADDED_COLUMNS:
            if column not in present:
                try:
                    self._db.execute(statement)
                except sqlite3.OperationalError:  # another process added it meanwhile
                    present = {row[1] for row in self._db.execute("PRAGMA table_info(answers)")}
                    if column not in present:
                        raise

    def close(self) -> None:
        self._db.close()

    def record(self, answer: Answer, asker: Asker, *, route: str, latency_ms: float) -> None:
        cited = sorted({c.doc_id for c in answer.citations})
        row = (
            answer.answer_id,
            _now(),
            asker.id,
            json.dumps(["admin"] if asker.admin else sorted(asker.groups)),
            route,
            answer.question,
            answer.standalone_question,
            int(answer.refused),
            answer.refusal_reason,
            json.dumps(cited),
            sum(1 for c in answer.citations if c.stale),
            json.dumps([n["doc_id"] for n in answer.nearby]),
            answer.generator,
            round(latency_ms, 1),
            answer.relevance,
        )
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute(
                f"INSERT INTO answers ({_ANSWER_COLUMNS}) VALUES ({', '.join('?' * len(row))})",
                row,
            )
            self._db.executemany(
                "INSERT INTO citations VALUES (?, ?)", [(answer.answer_id, d) for d in cited]
            )
            self._db.execute("COMMIT")

    def add_feedback(
        self,
        answer_id: str,
        asker: Asker,
        rating: Rating,
        reason: FeedbackReason | None = None,
        comment: str | None = None,
    ) -> None:
        """Feedback on an answer the same caller received (an admin may rate any answer)."""
        with self._lock:
            row = self._db.execute(
                "SELECT asker FROM answers WHERE answer_id = ?", (answer_id,)
            ).fetchone()
            if row is None or (row[0] != asker.id and not asker.admin):
                raise NotFoundError(
                    f"no answer '{answer_id}' for this key: use the answer_id that /v1/ask "
                    "returned to you"
                )
            self._db.execute(
                "INSERT INTO feedback (answer_id, at, asker, rating, reason, comment) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (answer_id, _now(), asker.id, rating.value, reason and reason.value, comment),
            )

    def thumbs_down(self, since: dt.date | None = None) -> list[ThumbsDown]:
        """Every thumbs down, oldest first, with what the log holds of its answer; with
        `since`, only feedback given on or after that day (UTC)."""
        query = (
            "SELECT a.answer_id, f.at, a.question, a.standalone, a.groups, a.refused, "
            "a.refusal_reason, a.cited, a.generator, f.reason, f.comment "
            "FROM feedback f JOIN answers a ON a.answer_id = f.answer_id WHERE f.rating = 'down'"
        )
        params: tuple[str, ...] = ()
        if since is not None:
            query += " AND f.at >= ?"
            params = (since.isoformat(),)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY f.at, f.id", params).fetchall()
        return [
            ThumbsDown(
                answer_id=row[0],
                at=row[1],
                question=row[2],
                standalone=row[3],
                groups=tuple(json.loads(row[4])),
                refused=bool(row[5]),
                refusal_reason=row[6],
                cited=tuple(json.loads(row[7])),
                generator=row[8],
                reason=row[9],
                comment=row[10],
            )
            for row in rows
        ]

    def document_use(
        self, doc_ids: Iterable[str] | None = None, since: dt.date | None = None
    ) -> dict[str, DocumentUse]:
        """How often each document was cited, and how many of those answers got a thumbs down
        (and how many of those for being outdated); with `since`, only answers given on or
        after that day (UTC)."""
        query = (
            "SELECT c.doc_id, COUNT(DISTINCT c.answer_id), "
            "COUNT(DISTINCT CASE WHEN f.rating = 'down' THEN f.answer_id END), "
            "COUNT(DISTINCT CASE WHEN f.rating = 'down' AND f.reason = 'outdated' "
            "THEN f.answer_id END) "
            "FROM citations c LEFT JOIN feedback f ON f.answer_id = c.answer_id"
        )
        params: tuple[str, ...] = ()
        if since is not None:
            query += " JOIN answers a ON a.answer_id = c.answer_id WHERE a.at >= ?"
            params = (since.isoformat(),)
        with self._lock:
            rows = self._db.execute(query + " GROUP BY c.doc_id", params).fetchall()
        use = {doc: DocumentUse(doc, cited, down, old) for doc, cited, down, old in rows}
        if doc_ids is None:
            return use
        return {d: use.get(d, DocumentUse(d, 0, 0)) for d in doc_ids}

    def gaps(self, limit: int = 50, since: dt.date | None = None) -> list[Gap]:
        """Refused questions, the same question (case and spacing aside) counted once, most
        asked first."""
        query = "SELECT standalone, at, refusal_reason, nearby FROM answers WHERE refused = 1"
        params: tuple[str, ...] = ()
        if since is not None:
            query += " AND at >= ?"
            params = (since.isoformat(),)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY at", params).fetchall()
        grouped: dict[str, list[tuple[str, str, str | None, str]]] = {}
        for row in rows:
            grouped.setdefault(normalise_question(row[0]), []).append(row)
        gaps = []
        for asked in grouped.values():
            nearby: dict[str, None] = {}
            for row in asked:
                nearby.update(dict.fromkeys(json.loads(row[3])))
            gaps.append(
                Gap(
                    question=asked[-1][0],
                    times_asked=len(asked),
                    last_asked=asked[-1][1],
                    reasons=sorted({r[2] for r in asked if r[2]}),
                    nearby=list(nearby)[:3],
                )
            )
        gaps.sort(key=lambda g: g.last_asked, reverse=True)
        gaps.sort(key=lambda g: g.times_asked, reverse=True)  # stable: recent first among ties
        return gaps[:limit]

    def gap_questions(
        self, weak_below: float, since: dt.date | None = None, limit: int | None = None
    ) -> list[GapQuestion]:
        """Refusals, and answers whose best source was less relevant than `weak_below`, oldest
        first; with `since`, only those given on or after that day (UTC); with `limit`, only
        the latest `limit` of them."""
        query = (
            "SELECT standalone, at, asker, groups, refused, relevance, cited FROM answers "
            "WHERE (refused = 1 OR relevance < ?)"
        )
        params: list[object] = [weak_below]
        if since is not None:
            query += " AND at >= ?"
            params.append(since.isoformat())
        query += " ORDER BY at DESC, rowid DESC"  # rowid: the order they were logged in
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [
            GapQuestion(
                q,
                at,
                asker,
                tuple(json.loads(groups)),
                bool(refused),
                relevance,
                tuple(json.loads(cited)),
            )
            for q, at, asker, groups, refused, relevance, cited in reversed(rows)
        ]

    def questions_per_day(self, since: dt.date) -> dict[str, int]:
        """Answers given (refusals included) per day (UTC, `YYYY-MM-DD`) from `since` on;
        days without any are left out."""
        with self._lock:
            rows = self._db.execute(
                "SELECT substr(at, 1, 10), COUNT(*) FROM answers WHERE at >= ? GROUP BY 1",
                (since.isoformat(),),
            ).fetchall()
        return {str(day): int(count) for day, count in rows}

    def answer_stats(self, since: dt.date) -> AnswerStats:
        """Answers given from `since` on (UTC): refused, rated, and marked down."""
        with self._lock:
            answers, refused = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(refused), 0) FROM answers WHERE at >= ?",
                (since.isoformat(),),
            ).fetchone()
            rated, down = self._db.execute(
                "SELECT COUNT(DISTINCT f.answer_id), "
                "COUNT(DISTINCT CASE WHEN f.rating = 'down' THEN f.answer_id END) "
                "FROM feedback f JOIN answers a ON a.answer_id = f.answer_id WHERE a.at >= ?",
                (since.isoformat(),),
            ).fetchone()
        return AnswerStats(answers, refused, rated, down)
