"""The HTTP service: app factory, lifespan, routes.

Heavy things (the Chroma client, the embedding model) are made once in the lifespan and
handed to routes through `Annotated` dependencies; tests build the app with their own settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, Field

from api.assembly import build_embedder, build_search, build_store, configure_runtime
from api.errors import install_error_handlers
from api.settings import Settings
from index.search import DenseSearch, SearchFilters
from index.store import ChromaStore

log = logging.getLogger("kb.api")


@dataclass
class Services:
    settings: Settings
    store: ChromaStore
    search: DenseSearch


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


class SearchFiltersIn(BaseModel):
    department: str | None = Field(None, description="Owning department, e.g. `finance`.")
    doc_type: str | None = Field(None, description="Document type, e.g. `playbook`.")


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000, examples=["invoice matching vendor"])
    k: int = Field(5, ge=1, le=100)
    filters: SearchFiltersIn = Field(default_factory=SearchFiltersIn)


class HitOut(BaseModel):
    doc_id: str
    title: str
    path: str
    page: int | None
    section: str
    score: float
    text: str
    doc_type: str
    department: str
    owner: str
    review_date: str | None
    is_stale: bool


class SearchResponse(BaseModel):
    hits: list[HitOut]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = build_store(settings)
        embedder = build_embedder(settings)
        embedder.embed(["warm up"])  # load the model now, not on the first request
        app.state.services = Services(settings, store, build_search(store, embedder))
        log.info("ready: %d chunks in the store", store.count_chunks())
        yield

    app = FastAPI(
        title="CoE knowledge base",
        version="0.1.0",
        description="Search and answers over the AI Center of Excellence knowledge base.",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    @app.get("/v1/health", tags=["ops"])
    def health() -> dict[str, Any]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.post("/v1/search", response_model=SearchResponse, tags=["search"])
    def search(body: SearchRequest, services: ServicesDep) -> SearchResponse:
        """Ranked chunks for a query, filtered inside the store."""
        hits = services.search.search(
            body.query,
            body.k,
            SearchFilters(**body.filters.model_dump()),
            services.settings.today_date(),
        )
        return SearchResponse(hits=[HitOut.model_validate(h.to_json()) for h in hits])

    return app
