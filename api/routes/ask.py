from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from api.deps import CallerDep, ServicesDep
from api.errors import describe
from api.schemas import AskRequest
from assistant.service import Answer, Final, Token

log = logging.getLogger("kb.api")
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
    """The same answer as Server-Sent Events: `token` events with text as it is generated,
    then one `final` event with the checked answer, citations and warnings. Retrieval runs
    before the response starts, so its errors get their own status; a failure after that ends
    the stream with one `error` event holding the problem body."""
    started = time.perf_counter()
    events = services.assistant.stream(
        body.question,
        principal=caller.principal,
        history=[t.to_turn() for t in body.history],
        filters=body.filters.to_filters(),
    )

    # Retrieve before answering 200, so that a bad filter or an unreachable store is a
    # problem response rather than a stream cut short.
    first = await run_in_threadpool(next, events)

    async def frames() -> AsyncIterator[str]:
        try:
            async for event in iterate_in_threadpool(itertools.chain([first], events)):
                if isinstance(event, Token):
                    yield _frame("token", {"text": event.text})
                elif isinstance(event, Final):
                    await run_in_threadpool(
                        services.record_answer, event.answer, caller, "ask/stream", started
                    )
                    yield _frame("final", asdict(event.answer))
        except Exception as exc:  # the status is sent: say what failed in the stream itself
            log.exception("stream of /v1/ask/stream failed")
            status, title, detail = describe(exc)
            yield _frame("error", {"status": status, "title": title, "detail": detail})

    return StreamingResponse(frames(), media_type="text/event-stream")


def _frame(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
