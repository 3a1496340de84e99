"""Evaluation runs over HTTP (admin role): start one, follow it, read its report. The runner,
one run at a time in a background thread, is evals/suite_runs.py; the report page is
evals/report_html.py, sent with the pages' security headers (its inline stylesheet allowed by
its hash)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from api.deps import AdminDep, ServicesDep
from api.routes.page import security_headers
from api.schemas import EvalRunDetail, EvalRunIn, EvalRunList, EvalRunOut

router = APIRouter(tags=["evals"])


def _out(status: Any) -> dict[str, Any]:
    fields = asdict(status)
    return fields | {"progress": {"done": fields.pop("done"), "total": fields.pop("total")}}


@router.post("/v1/evals/runs", response_model=EvalRunOut, status_code=202)
async def start_run(body: EvalRunIn, services: ServicesDep, caller: AdminDep) -> dict[str, Any]:
    """Start an evaluation run of a known dataset over the service's store (admin role); it
    goes on in the background: follow it at `GET /v1/evals/runs/{id}`. One at a time: 409
    while another runs."""
    started = await run_in_threadpool(
        services.eval_runs.start, body.dataset, body.generator, body.limit, body.overrides
    )
    return _out(started)


@router.get("/v1/evals/runs", response_model=EvalRunList)
async def list_runs(services: ServicesDep, caller: AdminDep) -> dict[str, Any]:
    """Every run under KB_DATA_DIR/evals (started here or by `kb eval run`), latest first."""
    found = await run_in_threadpool(services.eval_runs.runs)
    return {"runs": [_out(r) for r in found]}


@router.get("/v1/evals/runs/{run_id}", response_model=EvalRunDetail)
async def get_run(run_id: str, services: ServicesDep, caller: AdminDep) -> dict[str, Any]:
    """A run's status and progress, and its summary once it is no longer running."""
    status = await run_in_threadpool(services.eval_runs.get, run_id)
    summary = None
    if status.status != "running":
        summary = await run_in_threadpool(services.eval_runs.summary, run_id)
    return _out(status) | {"summary": summary}


@router.get("/v1/evals/runs/{run_id}/report", response_class=HTMLResponse)
async def run_report(
    run_id: str,
    services: ServicesDep,
    caller: AdminDep,
    baseline: Annotated[
        str | None, Query(description="Another run's id, to compare against.")
    ] = None,
) -> HTMLResponse:
    """The run's report as one self-contained HTML page (no script, nothing from elsewhere)."""
    html = await run_in_threadpool(services.eval_runs.report, run_id, baseline)
    return HTMLResponse(html, headers=security_headers(services.eval_runs.report_style_hashes))
