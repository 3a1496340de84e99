"""Governance: feedback on answers, and the knowledge-gap report (both from the query log);
the audit log of changes; the knowledge base's health."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.deps import AdminDep, CallerDep, ServicesDep, SpokeDep
from api.keys import Role
from api.schemas import FeedbackIn, FeedbackOut
from assistant.audit import AuditAction, AuditEntry
from assistant.gap_clusters import GapClusterReport
from assistant.kb_health import DEFAULT_DAYS, DEFAULT_GAPS, HealthReport
from assistant.querylog import Asker, Gap

router = APIRouter(tags=["governance"])


@router.post("/v1/feedback", response_model=FeedbackOut, status_code=201)
async def feedback(body: FeedbackIn, services: ServicesDep, caller: CallerDep) -> FeedbackOut:
    """Thumbs up or down on an answer this key received, with a reason (wrong source,
    outdated, incomplete, other) and an optional comment."""
    asker = Asker(caller.key_id, caller.groups, caller.role is Role.ADMIN)
    await run_in_threadpool(
        services.query_log.add_feedback,
        body.answer_id,
        asker,
        body.rating,
        body.reason,
        body.comment,
    )
    services.metrics.feedback.labels(body.rating.value).inc()
    return FeedbackOut(answer_id=body.answer_id, rating=body.rating, reason=body.reason)


@router.get("/v1/gaps", response_model=list[Gap] | GapClusterReport)
def gaps(
    services: ServicesDep,
    caller: SpokeDep,
    limit: int = Query(
        50, ge=1, le=500, description="At most this many questions (with `clusters`: clusters)."
    ),
    clusters: bool = Query(
        False,
        description="Group refused and low-confidence questions by topic, with counts, the "
        "askers' departments, examples and the nearest documents the caller may read.",
    ),
) -> list[Gap] | GapClusterReport:
    """The knowledge-gap report (spoke or admin role): questions the base could not answer,
    the same question counted once, most asked first, with the documents retrieval found
    nearby that the caller may read. With `clusters=true`, a backlog instead: refused
    questions and those answered on a source barely above the refusal threshold, clustered by
    topic (assistant/gap_clusters.py), largest first."""
    if clusters:
        return services.gap_clusters.report(caller.principal, limit)
    return services.gap_clusters.gaps(caller.principal, limit)


@router.get("/v1/audit", response_model=list[AuditEntry])
def audit_log(
    services: ServicesDep,
    caller: AdminDep,
    since: dt.date | None = Query(None, description="Only entries on or after this day (UTC)."),
    action: AuditAction | None = Query(None, description="Only entries of this action."),
    limit: int = Query(100, ge=1, le=1000, description="At most this many entries."),
) -> list[AuditEntry]:
    """The audit log (admin role): reviews, uploads, syncs and ingest runs, API key creation
    and revocation; who (key id, or `cli:<user>`), when, what, on what; newest first."""
    return services.audit.read(since=since, action=action, limit=limit)


@router.get("/v1/health/kb", response_model=HealthReport)
def kb_health(
    services: ServicesDep,
    caller: SpokeDep,
    days: int = Query(DEFAULT_DAYS, ge=1, le=365, description="Usage over the last N days."),
    gaps: int = Query(DEFAULT_GAPS, ge=0, le=50, description="At most this many gaps."),
) -> HealthReport:
    """Knowledge-base health (spoke or admin role, as the review queue and the gap report):
    documents by department, type and status, the stale share against `KB_STALE_TARGET`,
    documents without an owner, questions a day, refusal and thumbs-down rates, the top gaps,
    and the latest evaluation run of each dataset. Documents are counted within the caller's
    access (an admin's: all), so a restricted document is never counted for a spoke who may
    not read it; a reader key gets 403."""
    return services.health.report(caller.principal, days=days, gaps=gaps)
