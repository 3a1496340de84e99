from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from api.deps import CallerDep, ServicesDep
from api.schemas import AskRequest
from assistant.service import Answer, Final, Token

router = APIRouter(tags=["answers"])


@router.post("/v1/ask", response_model=Answer)
async def ask(body: AskRequest, services: ServicesDep, caller: CallerDep) -> Answer:
    """A grounded answer with checked citations, refusal when the base has no answer, and a
    warning for every cited document past its review date."""
    return await run_in_threadpool(
        services.assistant.ask,
        body.question,
        principal=caller.principal,
        history=[t.to_turn() for t in body.history],
        filters=body.filters.to_filters(),
    )


@router.post(
    "/v1/ask/stream",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def ask_stream(
    body: AskRequest, services: ServicesDep, caller: CallerDep
) -> StreamingResponse:
    """The same answer as Server-Sent Events: `token` events with text as it is generated,
    then one `final` event with the checked answer, citations and warnings."""
    events = services.assistant.stream(
        body.question,
        principal=caller.principal,
        history=[t.to_turn() for t in body.history],
        filters=body.filters.to_filters(),
    )

    async def frames() -> AsyncIterator[str]:
        async for event in iterate_in_threadpool(events):
            if isinstance(event, Token):
                yield _frame("token", {"text": event.text})
            elif isinstance(event, Final):
                yield _frame("final", asdict(event.answer))

    return StreamingResponse(frames(), media_type="text/event-stream")


def _frame(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
