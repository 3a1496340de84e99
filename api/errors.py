"""The one place where the error tree of index/errors.py becomes HTTP responses
(RFC 9457 problem details: status, title, detail). No stack trace reaches a client."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.ratelimit import retry_after_header
from index.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InputError,
    InvalidRequestError,
    KBError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    StoreError,
    TooLargeError,
)

log = logging.getLogger("kb.api")

_STATUS: list[tuple[type[KBError], int, str]] = [
    (NotFoundError, 404, "Not found"),
    (AuthenticationError, 401, "Unauthorized"),
    (PermissionDeniedError, 403, "Forbidden"),
    (RateLimitedError, 429, "Too many requests"),
    (ConflictError, 409, "Conflict"),
    (TooLargeError, 413, "Content too large"),
    (InvalidRequestError, 422, "Invalid request"),
    (InputError, 400, "Bad input"),
    (StoreError, 503, "Store unavailable"),
    (ConfigurationError, 500, "Server misconfigured"),
    (KBError, 500, "Internal error"),
]


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"status": status, "title": title, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def _headers(exc: KBError) -> dict[str, str] | None:
    if isinstance(exc, AuthenticationError):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, RateLimitedError):
        return {"Retry-After": retry_after_header(exc.retry_after_s)}
    return None


def status_of(exc: Exception) -> tuple[int, str]:
    """The HTTP status and title an error maps to (500 for anything not in the tree)."""
    for cls, status, title in _STATUS:
        if isinstance(exc, cls):
            return status, title
    return 500, "Internal error"


def describe(exc: Exception) -> tuple[int, str, str]:
    """Status, title and detail of an error, for a stream that has already started (its
    status is sent): the tree's message, or a generic one that leaks nothing."""
    status, title = status_of(exc)
    return status, title, str(exc) if isinstance(exc, KBError) else _UNEXPECTED


_UNEXPECTED = "an unexpected error occurred; see the server log"


def install_error_handlers(app: FastAPI) -> None:
    async def kb_error(request: Request, exc: Exception) -> JSONResponse:
        status, title = status_of(exc)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        assert isinstance(exc, KBError)  # registered for KBError only
        return problem(status, title, str(exc), _headers(exc))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal error", _UNEXPECTED)

    app.add_exception_handler(KBError, kb_error)
    app.add_exception_handler(Exception, unexpected)
