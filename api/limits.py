"""Request body size limits: a pure ASGI middleware that sees a request before FastAPI reads a
byte of its body.

A body whose Content-Length is over the limit is refused with 413 (the problem+json body of
api/errors.py) without being read; a body without one (chunked) is counted as it streams and
refused as soon as it passes the limit, so it is never buffered whole. The upload route has its
own limit, for the whole request: `MAX_FILES` files of `KB_UPLOAD_MAX_BYTES` plus the form
fields; inside the route each file is held to `KB_UPLOAD_MAX_BYTES` (api/uploads.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem
from api.uploads import MAX_FILES


@dataclass(frozen=True)
class Limit:
    max_bytes: int
    setting: str  # what sets it, for the message


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(
        self, app: ASGIApp, *, default: Limit, routes: Mapping[tuple[str, str], Limit]
    ) -> None:
        self.app = app
        self._default = default
        self._routes = routes  # (method, path) -> its own limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._routes.get((scope["method"], scope["path"]), self._default)
        declared = _content_length(scope)
        if declared is not None and declared > limit.max_bytes:
            await _refuse(limit, scope, receive, send)
            return

        received = 0
        over = started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                over = over or received > limit.max_bytes
            if over:
                raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the app's answer to a body cut short; ours follows
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if started:
                raise
        if over and not started:
            await _refuse(limit, scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


async def _refuse(limit: Limit, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem(
        413,
        "Content too large",
        f"the request body is over {limit.max_bytes} bytes, the limit of "
        f"{scope['method']} {scope['path']} ({limit.setting}): send less",
    )
    response.headers["Connection"] = "close"  # the rest of the body is not read
    await response(scope, receive, send)


def install_body_limits(app: FastAPI, *, max_request_bytes: int, upload_max_bytes: int) -> None:
    """`max_request_bytes` for every request but uploads, which may carry `MAX_FILES` files of
    `upload_max_bytes` (KB_MAX_REQUEST_BYTES and KB_UPLOAD_MAX_BYTES)."""
    upload = Limit(
        MAX_FILES * upload_max_bytes + max_request_bytes,
        f"{MAX_FILES} files of KB_UPLOAD_MAX_BYTES",
    )
    app.add_middleware(
        BodySizeLimit,
        default=Limit(max_request_bytes, "KB_MAX_REQUEST_BYTES"),
        routes={("POST", "/v1/documents"): upload},
    )
