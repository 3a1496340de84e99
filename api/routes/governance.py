"""Governance: feedback on answers, and the knowledge-gap report (both from the query log)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.deps import CallerDep, ServicesDep, SpokeDep
from api.keys import Role
from api.schemas import FeedbackIn, FeedbackOut
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


@router.get("/v1/gaps", response_model=list[Gap])
def gaps(
    services: ServicesDep,
    caller: SpokeDep,
    limit: int = Query(50, ge=1, le=500, description="At most this many questions."),
) -> list[Gap]:
    """The knowledge-gap report (spoke or admin role): questions the base could not answer,
    the same question counted once, most asked first, with the documents retrieval found
    nearby."""
    return services.query_log.gaps(limit)
