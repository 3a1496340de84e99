"""The HTTP service: app factory, lifespan, routes.

Heavy things (the Chroma client, the embedding model) are made once in the lifespan and
handed to routes through `Annotated` dependencies; tests build the app with their own settings.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, Field

from api.assembly import build_embedder, build_retriever, build_store, configure_runtime
from api.errors import install_error_handlers
from api.settings import Settings
from index.filters import ANONYMOUS, SearchFilters
from index.hits import Hit
from index.hybrid import HybridRetriever
from index.store import ChromaStore

log = logging.getLogger("kb.api")


@dataclass
class Services:
    settings: Settings
    store: ChromaStore
    retriever: HybridRetriever


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


class SearchFiltersIn(BaseModel):
    """Which documents to draw from; a list means "any of"."""

    department: str | list[str] | None = Field(None, examples=["finance"])
    doc_type: str | list[str] | None = Field(None, examples=[["playbook", "lessons_learned"]])
    status: str | list[str] | None = Field(None, description="Default: all but superseded/retired.")
    tags: list[str] | None = None
    owner: str | None = None
    vendor: str | None = None
    year: int | None = None
    reviewed_from: dt.date | None = Field(None, description="Last reviewed on or after.")
    reviewed_to: dt.date | None = Field(None, description="Last reviewed on or before.")
    stale: bool | None = Field(
        None, description="true: only past review date; false: only current."
    )
    include_superseded: bool = False

    def to_filters(self) -> SearchFilters:
        return SearchFilters.build(**self.model_dump())


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000, examples=["invoice matching vendor"])
    k: int = Field(5, ge=1, le=100)
    filters: SearchFiltersIn = Field(default_factory=SearchFiltersIn)
    neighbors: int = Field(0, ge=0, le=3, description="Attach this many chunks either side.")


class SearchResponse(BaseModel):
    hits: list[Hit]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = build_store(settings)
        retriever = build_retriever(settings, store, build_embedder(settings))
        retriever.warm()  # load the model and the keyword index now, not on the first request
        app.state.services = Services(settings, store, retriever)
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
        hits = services.retriever.retrieve(
            body.query,
            body.k,
            today=services.settings.today_date(),
            filters=body.filters.to_filters(),
            principal=ANONYMOUS,  # until API keys map requests to principals
            neighbors=body.neighbors,
        )
        return SearchResponse(hits=hits)

    return app
