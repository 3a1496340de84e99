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

from api.assembly import (
    build_answer_embedder,
    build_assistant,
    build_embedder,
    build_generator,
    build_ingester,
    build_retriever,
    build_store,
    configure_runtime,
)
from api.deps import Services
from api.errors import install_error_handlers
from api.keys import KeyStore
from api.limits import install_body_limits
from api.metrics import Metrics, MetricsMiddleware
from api.ratelimit import RateLimiter
from api.routes import admin, ask, chat, documents, governance, ops, search
from api.routes.page import install_page
from api.settings import Settings
from assistant.querylog import QueryLog

log = logging.getLogger("kb.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_runtime(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = build_store(settings)
        embedder = build_embedder(settings, threads=settings.serve_threads)
        cached = build_answer_embedder(settings, embedder)
        retriever = build_retriever(settings, store, cached)
        retriever.warm()  # load the model and the keyword index now, not on the first request
        assistant = build_assistant(settings, retriever, cached, build_generator(settings, cached))
        keys = KeyStore(settings.keys_path)
        query_log = QueryLog(settings.query_log_path)
        app.state.services = Services(
            settings,
            store,
            retriever,
            assistant,
            build_ingester(settings, store, embedder),
            keys,
            RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
            query_log,
            metrics,
        )
        log.info(
            "serving %d chunks with generator %s", store.count_chunks(), assistant.generator_name
        )
        if settings.auth == "dev":
            log.warning(
                "KB_AUTH=dev: serving WITHOUT API keys; every request acts as an admin and reads "
                "every document. For local development only"
            )
        elif not any(k.active for k in keys.list()):
            log.warning("no active API keys: every request will get 401; see `kb keys create`")
        yield
        keys.close()
        query_log.close()

    app = FastAPI(
        title="CoE knowledge base",
        version="0.1.0",
        description="Search, grounded answers and governance over the AI Center of Excellence "
        "knowledge base.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_body_limits(app, settings)  # refuses oversized bodies before any route runs
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts those 413s too
    for module in (ops, search, ask, documents, governance, chat, admin):
        app.include_router(module.router)
    install_page(app)  # the chat page at `/`, its script and style under /web
    return app
