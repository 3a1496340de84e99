"""Prometheus metrics: requests and latencies by route, answers, refusals, stale citations,
feedback and ingest results, served at `GET /metrics`.

Each app has its own registry (tests build several apps in one process). Routes are labelled
by their template (`/v1/documents/{doc_id}`), never the raw path, so a scan of random URLs
cannot blow up the number of series.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.service import Answer
from ingest.sync import IngestReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kb_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kb_http_request_duration_seconds",
            "Time from request to the last byte of the response, by route template.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter(
            "kb_answers",
            "Answers given, by generator and outcome (answered or refused).",
            ["generator", "outcome"],
            registry=self.registry,
        )
        self.stale_citations = Counter(
            "kb_stale_citations",
            "Citations of documents past their review date.",
            registry=self.registry,
        )
        self.first_token = Histogram(
            "kb_answer_first_token_seconds",
            "Time to the first generated token of answers that were generated.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.feedback = Counter(
            "kb_feedback", "Feedback on answers, by rating.", ["rating"], registry=self.registry
        )
        self.ingested = Counter(
            "kb_ingest_documents",
            "Documents seen by ingest runs through the API, by result.",
            ["result"],
            registry=self.registry,
        )

    def observe_answer(self, answer: Answer) -> None:
        outcome = "refused" if answer.refused else "answered"
        self.answers.labels(answer.generator, outcome).inc()
        self.stale_citations.inc(sum(1 for c in answer.citations if c.stale))
        first = answer.timings_ms.get("first_token")
        if first is not None:
            self.first_token.observe(first / 1000)

    def observe_ingest(self, report: IngestReport) -> None:
        counts = {
            "added": len(report.added),
            "updated": len(report.updated),
            "unchanged": len(report.unchanged),
            "removed": len(report.removed),
            "failed": len(report.failed),
        }
        for result, n in counts.items():
            self.ingested.labels(result).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every request by route template (pure ASGI, so a streamed response is
    timed to its last byte)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = _route_template(scope)
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    """The matched route's template; `unmatched` for a request no route took (a 404, or one
    refused before routing)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
