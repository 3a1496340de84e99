from __future__ import annotations

from fastapi import APIRouter

from api.deps import CallerDep, ServicesDep
from api.schemas import SearchRequest, SearchResponse

router = APIRouter(tags=["search"])


@router.post("/v1/search", response_model=SearchResponse)
def search(body: SearchRequest, services: ServicesDep, caller: CallerDep) -> SearchResponse:
    """Ranked passages for a query (hybrid dense + keyword), filtered inside the store to what
    the caller may read, with facet counts over the documents the passages were ranked from."""
    found = services.retriever.retrieve_with_facets(
        body.query,
        body.k,
        today=services.today(),
        filters=body.filters.to_filters(),
        principal=caller.principal,
        neighbors=body.neighbors,
        facets=body.facets,
    )
    return SearchResponse(hits=found.hits, facets=found.facets.counts)
