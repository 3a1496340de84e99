from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import CallerDep, ServicesDep
from api.errors import describe
from api.schemas import AskRequest
from api.streaming import Shown, stream_answer
from assistant.service import Answer, Found, Token

router = APIRouter(tags=["answers"])


@router.post("/v1/ask", response_model=Answer)
async def ask(body: AskRequest, services: ServicesDep, caller: CallerDep) -> Answer:
    """A grounded answer with checked citations, refusal when the base has no answer, and a
    warning for every cited document past its review date. Its `answer_id` is what
    `POST /v1/feedback` rates."""
    started = time.perf_counter()
    answer = await run_in_threadpool(
        services.assistant.ask,
        body.question,
        principal=caller.principal,
        history=[t.to_turn() for t in body.history],
        filters=body.filters.to_filters(),
    )
    await run_in_threadpool(services.record_answer, answer, caller, "ask", started)
    return answer


@router.post(
    "/v1/ask/stream",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def ask_stream(
    body: AskRequest, services: ServicesDep, caller: CallerDep
) -> StreamingResponse:
    """The same answer as Server-Sent Events: one `sources` event with the numbered sources
    as soon as they are retrieved (citations before any check: `support` 0), `token` events
    with text as it is generated, then one `final` event with the checked answer, citations
    and warnings (a refusal sends no `sources`). Retrieval runs
    before the response starts, so its errors get their own status; a failure after that ends
    the stream with one `error` event holding the problem body."""
    started = time.perf_counter()
    events = services.assistant.stream(
        body.question,
        principal=caller.principal,
        history=[t.to_turn() for t in body.history],
        filters=body.filters.to_filters(),
    )
    return await stream_answer(
        events,
        route="/v1/ask/stream",
        record=lambda answer: services.record_answer(answer, caller, "ask/stream", started),
        render=_frames,
        error_frame=_error_frame,
    )


def _frames(events: Iterator[Shown]) -> Iterator[str]:
    for event in events:
        if isinstance(event, Found):
            yield _frame("sources", {"sources": [asdict(c) for c in event.sources]})
        elif isinstance(event, Token):
            yield _frame("token", {"text": event.text})
        else:
            yield _frame("final", asdict(event.answer))


def _error_frame(exc: Exception) -> str:
    status, title, detail = describe(exc)
    return _frame("error", {"status": status, "title": title, "detail": detail})


def _frame(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
