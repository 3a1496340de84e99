"""OpenAI-compatible chat, so that existing chat clients, UIs and SDKs can use the knowledge
base by pointing their base URL at `/v1` and their API key at a KB key."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import CallerDep, ServicesDep, get_caller
from api.openai_errors import OpenAIErrorRoute, stream_error
from api.openai_format import completion, model_id, prompt_tokens, stream_chunks
from api.openai_schemas import ChatCompletion, ChatCompletionRequest, ModelCard, ModelList
from api.streaming import Shown, stream_answer
from index.errors import NotFoundError

router = APIRouter(tags=["chat (OpenAI-compatible)"], route_class=OpenAIErrorRoute)

_SSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`chat.completion`, or with `stream: true` Server-Sent Events: "
        "`data: <chat.completion.chunk>` frames, then `data: [DONE]`.",
        "content": {"text/event-stream": {}},
    }
}


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=_SSE)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, services: ServicesDep, caller: CallerDep
) -> ChatCompletion | StreamingResponse:
    """The grounded answer of `POST /v1/ask` in OpenAI's Chat Completions shape.

    The last message is the question; earlier user and assistant messages are the history a
    follow-up is rewritten against. system and developer messages are ignored on purpose: the
    KB's grounding rules (answer only from the sources, cite them, refuse otherwise) are not
    the client's to override, and a prompt is no place to widen what a key may read. `model`
    is echoed back but does not choose anything: the configured generator answers;
    `temperature` and `max_tokens` are accepted and ignored for the same reason.

    The content is the checked answer with its [n] markers, then a Sources block; the KB adds
    `citations`, `warnings`, `refused` and `answer_id` beside `choices`. Streamed, they come
    on the last chunk with `answer`, the checked text, which can differ from the streamed
    tokens: checking removes sentences no source supports after they were generated.
    """
    started = time.perf_counter()
    question, history, filters = body.question(), body.history(), body.search_filters()
    model = body.model or model_id(services.assistant.generator_name)
    prompt, base_url = prompt_tokens(body.messages), str(request.base_url)
    if not body.stream:
        answer = await run_in_threadpool(
            services.assistant.ask,
            question,
            principal=caller.principal,
            history=history,
            filters=filters,
        )
        await run_in_threadpool(services.record_answer, answer, caller, "chat", started)
        return completion(answer, model=model, prompt=prompt, base_url=base_url)
    events = services.assistant.stream(
        question, principal=caller.principal, history=history, filters=filters
    )

    def render(shown: Iterator[Shown]) -> Iterator[str]:
        """`data:` frames as OpenAI sends them, then `data: [DONE]`."""
        for chunk in stream_chunks(
            shown, model=model, prompt=prompt, base_url=base_url, include_usage=body.include_usage()
        ):
            yield f"data: {chunk.model_dump_json()}\n\n"
        yield "data: [DONE]\n\n"

    return await stream_answer(
        events,
        route="/v1/chat/completions",
        record=lambda answer: services.record_answer(answer, caller, "chat/stream", started),
        render=render,
        error_frame=_error_frame,
    )


@router.get("/v1/models", dependencies=[Depends(get_caller)])
async def list_models(services: ServicesDep) -> ModelList:
    """The one model that answers: the configured generator behind the knowledge base."""
    return ModelList(data=[ModelCard(id=model_id(services.assistant.generator_name))])


@router.get("/v1/models/{model}", dependencies=[Depends(get_caller)])
async def get_model(model: str, services: ServicesDep) -> ModelCard:
    if model != model_id(services.assistant.generator_name):
        raise NotFoundError(f"no model '{model}': see GET /v1/models")
    return ModelCard(id=model)


def _error_frame(exc: Exception) -> str:
    """An error after the response has started goes out as OpenAI's in-stream error object,
    which its SDKs raise as an `APIError`."""
    return f"data: {json.dumps({'error': stream_error(exc)}, ensure_ascii=False)}\n\n"
