"""The one streaming path of the answer routes: `POST /v1/ask/stream` (named SSE events) and
`POST /v1/chat/completions` with `stream: true` (OpenAI's chunks). Only the frames differ;
each route passes its own `render` and `error_frame`.

- Retrieval runs before the response starts: the first event is pulled (in a worker thread)
  before answering 200, so that a filter the store refuses or an unreachable store gets its
  own status code, as in the non-streamed routes.
- Everything after that runs in a worker thread too: the assistant and the generator are
  blocking code, and the event loop serves other requests meanwhile.
- The final answer is recorded (query log, metrics) as it is served, like the other routes.
- Routes render `Found` (the sources, before the first token), `Token` and `Final`; a route
  skips what it does not show. Any other kind of event is skipped here, so the assistant can
  add kinds of events without breaking a route.
- A failure after the response has started cannot change its status: it is logged and sent
  as the route's own error frame, instead of a connection that just stops.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator

from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from assistant.service import Answer, Event, Final, Found, Token
from index.errors import KBError

log = logging.getLogger("kb.api")

Shown = Found | Token | Final  # the events routes render
Render = Callable[[Iterator[Shown]], Iterator[str]]  # events -> SSE frames (runs in a thread)
ErrorFrame = Callable[[Exception], str]  # a failure after the start -> the frame that says so

# Proxies must pass each frame on as it comes, and nobody may cache a stream.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def stream_answer(
    events: Iterator[Event],
    *,
    route: str,
    record: Callable[[Answer], None],
    render: Render,
    error_frame: ErrorFrame,
) -> StreamingResponse:
    """Serve the assistant's `events` as Server-Sent Events; `record` is called with the
    final answer as it is served. Errors before the first event propagate (the app's error
    handlers give them their status); later ones become `error_frame`."""
    first = await run_in_threadpool(lambda: next(events, None))
    started = itertools.chain([] if first is None else [first], events)
    frames = render(shown(started, record))

    async def body() -> AsyncIterator[str]:
        try:
            async for frame in iterate_in_threadpool(frames):
                yield frame
        except Exception as exc:
            if isinstance(exc, KBError):
                log.warning("stream of %s failed: %s", route, exc)
            else:
                log.exception("stream of %s failed", route)
            yield error_frame(exc)

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)


def shown(events: Iterable[Event], record: Callable[[Answer], None]) -> Iterator[Shown]:
    """The tokens and the final answer, recorded as it passes; other kinds of events are
    skipped. A stream without a final answer is an error, not a reply that just ends."""
    final = False
    for event in events:
        if isinstance(event, Found | Token):
            yield event
        elif isinstance(event, Final):
            record(event.answer)
            final = True
            yield event
    if not final:
        raise RuntimeError("the assistant's stream ended without a final answer")
