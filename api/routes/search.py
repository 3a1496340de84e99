from __future__ import annotations

from fastapi import APIRouter

from api.deps import CallerDep, ServicesDep
from api.schemas import SearchRequest, SearchResponse

router = APIRouter(tags=["search"])


@router.post("/v1/search", response_model=SearchResponse)
def search(body: SearchRequest, services: ServicesDep, caller: CallerDep) -> SearchResponse:
    """Ranked passages for a query (hybrid dense + keyword), filtered inside the store to what
    the caller may read."""
    hits = services.retriever.retrieve(
        body.query,
        body.k,
        today=services.settings.today_date(),
        filters=body.filters.to_filters(),
        principal=caller.principal,
        neighbors=body.neighbors,
    )
    return SearchResponse(hits=hits)
