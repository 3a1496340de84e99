"""Request body size limits: a pure ASGI middleware that sees a request before FastAPI reads a
byte of its body.

A body whose Content-Length is over the limit is refused with 413 (the problem+json body of
api/errors.py) without being read; a body without one (chunked) is counted as it streams and
refused as soon as it passes the limit, so it is never buffered whole. The upload route has its
own limit, for the whole request: `MAX_FILES` files of `KB_UPLOAD_MAX_BYTES` plus the form
fields; inside the route each file is held to `KB_UPLOAD_MAX_BYTES` (api/uploads.py).

Headers over `MAX_HEADER_BYTES` (16 KiB) get 431 before anything else runs.

A body that stops arriving (no byte for `BODY_IDLE_TIMEOUT_S` before it is complete) is refused
with 408: the server has no timeout of its own for a body, so a client that sends its headers
and then nothing would otherwise hold its request open for as long as it likes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import anyio
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem
from api.uploads import MAX_FILES

# Longest wait for the next part of a request body that is not complete. nginx waits 60 s
# between two reads of a body by default; a client that has begun a body and then sends nothing
# for this long is stalled or hostile (TCP on a lossy link retransmits within about 7 s), and a
# shorter wait frees its request sooner.
BODY_IDLE_TIMEOUT_S = 15.0
# Largest request head (header names and values): h11's and many proxies' limit. uvicorn's
# httptools parser reads a head of any size; past this one it is refused with 431 unread.
MAX_HEADER_BYTES = 16 * 1024


@dataclass(frozen=True)
class Limit:
    max_bytes: int
    setting: str  # what sets it, for the message


class _BodyRefused(Exception):
    """Raised to the app when its body is over the limit or stopped arriving; the middleware
    answers instead (413 or 408)."""


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        default: Limit,
        routes: Mapping[tuple[str, str], Limit],
        idle_timeout_s: float = BODY_IDLE_TIMEOUT_S,
    ) -> None:
        self.app = app
        self._default = default
        self._routes = routes  # (method, path) -> its own limit
        self._idle_timeout_s = idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if head > MAX_HEADER_BYTES:
            detail = f"the request's headers are {head} bytes, over {MAX_HEADER_BYTES}: send less"
            await _refuse(431, "Request header fields too large", detail, scope, receive, send)
            return
        limit = self._routes.get((scope["method"], scope["path"]), self._default)
        declared = _content_length(scope)
        if declared is not None and declared > limit.max_bytes:
            await _too_large(limit, scope, receive, send)
            return

        received = 0
        over = idle = started = complete = False

        async def counting_receive() -> Message:
            nonlocal received, over, idle, complete
            if complete:  # after the body: waiting for a disconnect takes as long as it takes
                return await receive()
            with anyio.move_on_after(self._idle_timeout_s):
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    over = over or received > limit.max_bytes
                    complete = not message.get("more_body", False)
                else:
                    complete = True  # a disconnect: nothing more comes
                if over:
                    raise _BodyRefused
                return message
            idle = True
            raise _BodyRefused

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if (over or idle) and not started:
                return  # the app's answer to a body cut short; ours follows
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyRefused:
            if started:
                raise
        if over and not started:
            await _too_large(limit, scope, receive, send)
        elif idle and not started:
            detail = (
                f"no part of the request body of {_where(scope)} arrived for "
                f"{self._idle_timeout_s:g} s: send the whole body without pausing"
            )
            await _refuse(408, "Request timeout", detail, scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


async def _refuse(
    status: int, title: str, detail: str, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer in place of the route and close the connection: the rest of the request is not
    read."""
    response = problem(status, title, detail)
    response.headers["Connection"] = "close"
    await response(scope, receive, send)


def _where(scope: Scope) -> str:
    return f"{scope['method']} {scope['path']}"


async def _too_large(limit: Limit, scope: Scope, receive: Receive, send: Send) -> None:
    detail = (
        f"the request body is over {limit.max_bytes} bytes, the limit of {_where(scope)} "
        f"({limit.setting}): send less"
    )
    await _refuse(413, "Content too large", detail, scope, receive, send)


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
