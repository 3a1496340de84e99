"""The pages: chat, search, review queue and health dashboard, each one HTML file with its
script, sharing style and helpers, served from the package (api/web/).

No build step and nothing from outside the service: the chat page talks to `/v1/ask/stream`,
`/v1/feedback` and `/v1/documents` on its own origin; the search page to `/v1/search` and
`/v1/projects/similar`; the review page to `/v1/documents/stale` and
`/v1/documents/{id}/review`; the health page to `/v1/health/kb`. It is sent with a strict
Content-Security-Policy (scripts and styles from this origin only, no inline code, no other
origin reachable, Trusted Types required so that no string can become HTML), so document text
that reaches it can never run as code. A page itself needs no key; the API calls it makes
carry the key the user pastes (or none, in `KB_AUTH=dev`), and the API decides what it may see.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib.resources import files

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

ASSETS_PATH = "/web"  # where scripts and styles are served; the HTML files refer to it


def content_security_policy(style_hashes: Sequence[str] = ()) -> str:
    """The pages' policy; `style_hashes` (`'sha256-...'`) allow inline `<style>` elements by
    their hash, for a page built on the server (the evaluation report: evals/report_html.py)."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            " ".join(["style-src 'self'", *style_hashes]),
            "img-src 'self'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        ]
    )


def security_headers(style_hashes: Sequence[str] = ()) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(style_hashes),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",  # revalidate (cheap: ETag), so an upgrade shows at once
    }


CONTENT_SECURITY_POLICY = content_security_policy()
SECURITY_HEADERS = security_headers()

router = APIRouter(tags=["page"], include_in_schema=False)


def _page(name: str) -> HTMLResponse:
    html = (files("api") / "web" / name).read_text(encoding="utf-8")
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/", response_class=HTMLResponse)
@router.get("/chat", response_class=HTMLResponse)
def chat_page() -> HTMLResponse:
    """The chat page: ask, read the answer with its sources and warnings, give feedback."""
    return _page("index.html")


@router.get("/search", response_class=HTMLResponse)
def search_page() -> HTMLResponse:
    """Search for spokes: filters with facet counts, result cards, similar projects."""
    return _page("search.html")


@router.get("/review", response_class=HTMLResponse)
def review_page() -> HTMLResponse:
    """The review queue by owner, with "Mark reviewed" (spoke or admin keys see it)."""
    return _page("review.html")


@router.get("/health", response_class=HTMLResponse)
def health_page() -> HTMLResponse:
    """The knowledge base's health as numbers and bar charts (spoke or admin keys)."""
    return _page("health.html")


class _Assets(StaticFiles):
    """Package files with the page's security headers."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(SECURITY_HEADERS)
        return response


def install_page(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(ASSETS_PATH, _Assets(packages=[("api", "web")]), name="web")
