"""Errors of the OpenAI-compatible routes, readable by OpenAI's SDKs and chat UIs.

Those read `{"error": {"message", "type", "param", "code"}}`: the SDKs raise with
`error.message` as the exception's text and `param` naming the field, and chat UIs show that
message. Our problem-details body has none of it, so a client would only say "Error code:
422". `OpenAIErrorRoute` adds the `error` object beside the body the app's own handlers
produce (api/errors.py stays the one place that decides status codes and headers).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from api.errors import describe
from index.errors import InvalidRequestError, KBError

_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}

Handler = Callable[[Request, Exception], Awaitable[Response]]


def error_object(message: str, status: int, param: str | None = None) -> dict[str, Any]:
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"message": message, "type": kind, "param": param, "code": None}


def stream_error(exc: Exception) -> dict[str, Any]:
    """The error object for a failure after a stream has started (its status is sent)."""
    status, _, detail = describe(exc)
    return error_object(detail, status, getattr(exc, "parameter", None))


class OpenAIErrorRoute(APIRoute):
    """A route whose validation and KB errors also carry OpenAI's `error` object."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError as exc:
                return await _shaped(request, exc, *_validation_message(exc))
            except KBError as exc:
                param = exc.parameter if isinstance(exc, InvalidRequestError) else None
                return await _shaped(request, exc, str(exc), param)

        return route


async def _shaped(request: Request, exc: Exception, message: str, param: str | None) -> Response:
    """The app's own response to `exc`, with OpenAI's error object added to its body."""
    handlers: dict[Any, Handler] = request.app.exception_handlers
    handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
    response = await handler(request, exc)
    body = json.loads(bytes(response.body))
    content = body if isinstance(body, dict) else {"detail": body}
    content["error"] = error_object(message, response.status_code, param)
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return JSONResponse(
        content, status_code=response.status_code, headers=headers, media_type=response.media_type
    )


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """`field: what is wrong` for each error; the first field is the `param`."""
    parts, params = [], []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        what = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{'.'.join(loc) or 'body'}: {what}")
        params.append(loc[0] if loc else None)
    return "; ".join(parts), next((p for p in params if p), None)
