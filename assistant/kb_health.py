"""Knowledge-base health for the CoE (`kb health`, `GET /v1/health/kb`): what the base holds
(documents by department, type and status), how current it is (the stale share of active
documents against the target the CoE sets, `KB_STALE_TARGET`), who keeps it (documents without
an owner), how it is used (questions a day, refusal and thumbs-down rates over the last days,
and the questions it could not answer: the gap report's), and how well it answers (the latest
evaluation run of each dataset, read from the runs' `summary.json` files).

Everything about documents is counted over the documents the principal may read (the registry,
filtered as the review queue is), so a restricted document is never counted for someone who may
not read it; the documents a gap's nearby list names are filtered the same way. Usage and
evaluation figures are aggregates of the whole service: they name no document. Query-log days
are the log's own (UTC dates of when answers were given), not `KB_TODAY`, which moves review
dates only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.querylog import Gap, QueryLog
from assistant.review import readable, visible_gaps
from index.facets import FacetCount, count_facets
from index.filters import Principal
from index.records import UNKNOWN_OWNER, DocumentRecord, Status
from index.store import ChromaStore

log = logging.getLogger("kb.health")

# The stale share the CoE tolerates by default: one document in ten past its review date. A
# policy choice (KB_STALE_TARGET), not a measurement.
STALE_TARGET = 0.10
DEFAULT_DAYS = 30  # the usage window: a month of questions
DEFAULT_GAPS = 5  # the top of the gap report; `kb gaps` has the rest
SUMMARY_FILE = "summary.json"  # what `kb eval run` writes into each run folder (evals/suite.py)
_INACTIVE = {Status.SUPERSEDED, Status.RETIRED}  # kept for the record, not kept current


@dataclass(frozen=True)
class StaleShare:
    active: int  # documents neither superseded nor retired: those that must stay current
    stale: int  # of those, past their review date
    never_reviewed: int  # of those, without a review date (never stale: docs/metadata.md)
    share: float | None  # stale / active; None without active documents
    target: float  # KB_STALE_TARGET
    over_target: bool


@dataclass(frozen=True)
class DayCount:
    day: str  # YYYY-MM-DD (UTC)
    questions: int


@dataclass(frozen=True)
class Usage:
    days: int
    since: str  # the window's first day (UTC), today included in the window
    questions: int  # answers given, refusals included
    per_day: list[DayCount]  # every day of the window, oldest first, zeros included
    refused: int
    refusal_rate: float | None  # refused / questions; None without questions
    rated: int  # answers that got feedback
    thumbs_down: int  # answers that got a thumbs down
    thumbs_down_rate: float | None  # thumbs_down / rated; None without feedback


@dataclass(frozen=True)
class EvalRun:
    """The latest run of one dataset (`kb eval run`), as its summary.json says."""

    dataset: str
    folder: str
    status: str  # complete, or interrupted / running when no complete run exists
    written_at: str
    generator: str
    questions: int
    recorded: int
    scores: dict[str, float]  # the overall metrics (evals/README.md, "Evaluation suites")


@dataclass(frozen=True)
class HealthReport:
    today: str  # the day review dates are judged on (KB_TODAY, or the real today)
    documents: int
    by_department: list[FacetCount]
    by_type: list[FacetCount]
    by_status: list[FacetCount]
    stale: StaleShare
    without_owner: list[str]  # ids of documents whose owner is unknown
    usage: Usage
    top_gaps: list[Gap]
    evaluations: list[EvalRun]  # one per dataset, by dataset name; none before any run


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class KBHealth:
    def __init__(
        self,
        store: ChromaStore,
        query_log: QueryLog,
        today: Callable[[], dt.date],
        *,
        stale_target: float = STALE_TARGET,
        eval_runs: Path | None = None,
        log_today: Callable[[], dt.date] = utc_today,
    ) -> None:
        self._store = store
        self._log = query_log
        self._today = today
        self.stale_target = stale_target
        self._eval_runs = eval_runs
        self._log_today = log_today

    def report(
        self, principal: Principal, days: int = DEFAULT_DAYS, gaps: int = DEFAULT_GAPS
    ) -> HealthReport:
        """The health of the documents `principal` may read, the service's usage over the
        last `days` days, the `gaps` most asked unanswered questions of that time, and the
        latest evaluation run of each dataset."""
        records = readable(self._store.documents(), principal)
        today = self._today()
        facets = count_facets(map(_facet_fields, records), ("department", "doc_type", "status"))
        since = self._log_today() - dt.timedelta(days=days - 1)
        return HealthReport(
            today=today.isoformat(),
            documents=len(records),
            by_department=list(facets["department"]),
            by_type=list(facets["doc_type"]),
            by_status=list(facets["status"]),
            stale=stale_share(records, today, self.stale_target),
            without_owner=sorted(r.doc_id for r in records if r.meta.owner == UNKNOWN_OWNER),
            usage=self._usage(since, days),
            top_gaps=visible_gaps(self._log.gaps(gaps, since=since), records, principal),
            evaluations=latest_runs(self._eval_runs) if self._eval_runs else [],
        )

    def _usage(self, since: dt.date, days: int) -> Usage:
        per_day = self._log.questions_per_day(since)
        window = [(since + dt.timedelta(days=i)).isoformat() for i in range(days)]
        stats = self._log.answer_stats(since)
        return Usage(
            days=days,
            since=since.isoformat(),
            questions=stats.answers,
            per_day=[DayCount(day, per_day.get(day, 0)) for day in window],
            refused=stats.refused,
            refusal_rate=_rate(stats.refused, stats.answers),
            rated=stats.rated,
            thumbs_down=stats.thumbs_down,
            thumbs_down_rate=_rate(stats.thumbs_down, stats.rated),
        )


def _facet_fields(record: DocumentRecord) -> dict[str, str]:
    meta = record.meta
    return {"department": meta.department, "doc_type": meta.doc_type, "status": meta.status}


def stale_share(records: Iterable[DocumentRecord], today: dt.date, target: float) -> StaleShare:
    """Stale documents among the active ones (superseded and retired ones need no review)."""
    active = [r.meta for r in records if r.meta.status not in _INACTIVE]
    stale = sum(meta.is_stale(today) for meta in active)
    share = _rate(stale, len(active))
    return StaleShare(
        active=len(active),
        stale=stale,
        never_reviewed=sum(meta.review_date is None for meta in active),
        share=share,
        target=target,
        over_target=share is not None and share > target,
    )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def latest_runs(folder: Path) -> list[EvalRun]:
    """The latest complete run of each dataset among the run folders under `folder` (the
    latest of any status for a dataset without a complete run), by dataset name. A folder
    whose summary.json cannot be read is skipped, with a warning."""
    runs = [run for path in sorted(folder.glob(f"*/{SUMMARY_FILE}")) if (run := _read_run(path))]
    latest: dict[str, EvalRun] = {}
    for run in runs:
        kept = latest.get(run.dataset)
        if kept is None or _recency(run) > _recency(kept):
            latest[run.dataset] = run
    return [latest[name] for name in sorted(latest)]


def _recency(run: EvalRun) -> tuple[bool, str]:
    return (run.status == "complete", run.written_at)


def _read_run(path: Path) -> EvalRun | None:
    try:
        summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        overall = summary["metrics"]["overall"]
        return EvalRun(
            dataset=str(summary["dataset"]["name"]),
            folder=str(path.parent),
            status=str(summary["status"]),
            written_at=str(summary["written_at"]),
            generator=str(summary.get("generator", "")),
            questions=int(summary.get("questions", 0)),
            recorded=int(summary.get("recorded", 0)),
            scores={k: float(v) for k, v in overall.items() if isinstance(v, int | float)},
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("skipping evaluation run %s: %s", path.parent, exc)
        return None
