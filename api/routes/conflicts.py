"""The supersession and conflict report (spoke or admin role, as the review queue)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep, SpokeDep
from assistant.conflicts import DEFAULT_DAYS, ConflictReport

router = APIRouter(tags=["governance"])


@router.get("/v1/conflicts", response_model=ConflictReport)
async def conflicts(
    services: ServicesDep,
    caller: SpokeDep,
    days: int = Query(DEFAULT_DAYS, ge=1, le=3650, description="Citations of the last N days."),
) -> ConflictReport:
    """Superseded documents that answers still cite (with their successor and owner),
    superseded documents whose successor is missing, and pairs of current documents that
    state different values for the same detail, side by side. Within the caller's access: a
    spoke never sees a document it may not read. Computed on demand (seconds: every
    value-stating sentence is embedded)."""
    return await run_in_threadpool(services.conflicts.report, caller.principal, days)
