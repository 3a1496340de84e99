from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from api.deps import ServicesDep
from api.metrics import CONTENT_TYPE

router = APIRouter(tags=["ops"])


@router.get("/v1/health")
def health() -> dict[str, Any]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/v1/ready")
def ready(services: ServicesDep) -> dict[str, Any]:
    """Readiness: the store answers and the models are loaded."""
    services.store.heartbeat()
    return {
        "status": "ready",
        "chunks": services.store.count_chunks(),
        "generator": services.assistant.generator_name,
    }


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics: requests and latencies by route, answers and refusals, stale
    citations, feedback, ingest results. Open like `/v1/health`: counts only, no content."""
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
