from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ServicesDep

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
