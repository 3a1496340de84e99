"""The HTTP service: app factory and lifespan.

Heavy things (the Chroma client, the embedding model, the keyword index, the generator) are
made once in the lifespan and handed to routes through `Annotated` dependencies (api/deps.py);
tests build the app with their own settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.assembly import build_services, configure_runtime
from api.errors import install_error_handlers
from api.limits import install_body_limits
from api.metrics import Metrics, MetricsMiddleware
from api.routes import (
    admin,
    ask,
    chat,
    conflicts,
    documents,
    evals,
    governance,
    ops,
    projects,
    search,
)
from api.routes.page import install_page
from api.settings import Settings

log = logging.getLogger("kb.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service, assembled from `settings` (read from `KB_*` variables if not given): the
    one place of the service that reads them; routes get `Services` and plain values."""
    settings = settings or Settings()
    configure_runtime(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings, metrics)
        app.state.services = services
        log.info(
            "serving %d chunks with generator %s",
            services.store.count_chunks(),
            services.assistant.generator_name,
        )
        if services.dev_auth:
            log.warning(
                "KB_AUTH=dev: serving WITHOUT API keys; every request acts as an admin and reads "
                "every document. For local development only"
            )
        elif not any(k.active for k in services.keys.list()):
            log.warning("no active API keys: every request will get 401; see `kb keys create`")
        yield
        services.close()

    app = FastAPI(
        title="CoE knowledge base",
        version="0.1.0",
        description="Search, grounded answers and governance over the AI Center of Excellence "
        "knowledge base.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # refuses oversized bodies before any route runs
    install_body_limits(
        app,
        max_request_bytes=settings.max_request_bytes,
        upload_max_bytes=settings.upload_max_bytes,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts those 413s too
    for module in (
        ops,
        search,
        ask,
        documents,
        governance,
        conflicts,
        projects,
        chat,
        admin,
        evals,
    ):
        app.include_router(module.router)
    install_page(app)  # the chat page at `/`, its script and style under /web
    return app
