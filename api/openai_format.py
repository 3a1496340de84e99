"""The assistant's answers as OpenAI Chat Completions: one `chat.completion`, or the chunks of
a streamed one.

A plain chat client shows only the message content, so the content carries what the KB's
own fields carry for programs: the [n] markers, the stale-source warning, and a Sources block
naming the document behind each marker. Token counts are approximate (words and punctuation
marks): the generator may be extractive and have no tokens at all.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence

from api.openai_schemas import (
    SOURCES_HEADING,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessageIn,
    ChunkChoice,
    CompletionChoice,
    Delta,
    FinalChunk,
    Usage,
)
from assistant.service import Answer, Citation, Event, Final, Token

_TOKEN = re.compile(r"\w+|[^\w\s]")


def model_id(generator_name: str) -> str:
    """The one model `GET /v1/models` lists: the generator that answers, whatever is asked."""
    return f"kb-{generator_name}"


def approx_tokens(text: str) -> int:
    """Words and punctuation marks: closer to a BPE count than whitespace-separated words."""
    return len(_TOKEN.findall(text))


def prompt_tokens(messages: Sequence[ChatMessageIn]) -> int:
    """What the client sent; the sources the generator also reads are not counted."""
    return sum(approx_tokens(m.text()) for m in messages)


def usage(prompt: int, content: str) -> Usage:
    completion = approx_tokens(content)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def sources_block(citations: Sequence[Citation], base_url: str) -> str:
    """`[n] title (path, p. N) — link` per citation. Links are made absolute: a chat client
    would resolve a relative one against its own address."""
    if not citations:
        return ""
    lines = [SOURCES_HEADING]
    for c in citations:
        where = f"{c.path}, p. {c.page}" if c.page else c.path
        lines.append(f"[{c.n}] {c.title} ({where}) — {base_url.rstrip('/')}{c.link}")
    return "\n".join(lines)


def reply_text(answer: Answer, base_url: str) -> str:
    """The checked answer (markers and stale-warning line included), then its sources."""
    return _join(answer.answer, sources_block(answer.citations, base_url))


def completion(answer: Answer, *, model: str, prompt: int, base_url: str) -> ChatCompletion:
    content = reply_text(answer, base_url)
    return ChatCompletion(
        id=f"chatcmpl-{answer.answer_id}",
        created=int(time.time()),
        model=model,
        choices=[CompletionChoice(message=AssistantMessage(content=content))],
        usage=usage(prompt, content),
        citations=answer.citations,
        warnings=answer.warnings,
        refused=answer.refused,
        answer_id=answer.answer_id,
    )


def stream_chunks(
    events: Iterable[Event], *, model: str, prompt: int, base_url: str, include_usage: bool
) -> Iterator[ChatCompletionChunk]:
    """The role, each token as it comes, the tail (see `stream_tail`), then the final chunk
    with the KB's fields; with `include_usage`, a last chunk with no choices and the usage,
    as OpenAI sends it. The id is not the answer's: that is known only at the end."""
    chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: Delta) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=chunk_id, created=created, model=model, choices=[ChunkChoice(delta=delta)]
        )

    yield chunk(Delta(role="assistant", content=""))
    streamed: list[str] = []
    answer: Answer | None = None
    for event in events:
        if isinstance(event, Token):
            streamed.append(event.text)
            yield chunk(Delta(content=event.text))
        elif isinstance(event, Final):
            answer = event.answer
    if answer is None:
        raise AssertionError("the assistant's stream ended without a final answer")
    tail = stream_tail(answer, "".join(streamed), base_url)
    if tail:
        yield chunk(Delta(content=tail))
    yield FinalChunk(
        id=chunk_id,
        created=created,
        model=model,
        choices=[ChunkChoice(delta=Delta(), finish_reason="stop")],
        citations=answer.citations,
        warnings=answer.warnings,
        refused=answer.refused,
        answer_id=answer.answer_id,
        answer=answer.answer,
    )
    if include_usage:
        counted = usage(prompt, "".join(streamed) + tail)
        yield ChatCompletionChunk(
            id=chunk_id, created=created, model=model, choices=[], usage=counted
        )


def stream_tail(answer: Answer, streamed: str, base_url: str) -> str:
    """What follows the streamed tokens so that a chat client shows what the checked answer
    says: the whole answer if nothing was streamed (a refusal before generating), else what
    checking removed or concluded, each stale source's warning, and the Sources block. The
    deltas already sent cannot be taken back; this says which of them did not hold."""
    if not streamed.strip():
        return reply_text(answer, base_url)
    notes: list[str] = []
    if answer.unsupported:
        removed = " ".join(f'"{s.strip()}"' for s in answer.unsupported)
        notes.append(f"Removed on checking (no source supports it): {removed}")
    if answer.refused and answer.answer != streamed.strip():
        notes.append(answer.answer)
    notes += [f"Warning: {w}" for w in answer.warnings]
    tail = _join(*notes, sources_block(answer.citations, base_url))
    gap = "\n" if streamed.endswith("\n") else "\n\n"
    return gap + tail if tail else ""


def _join(*parts: str) -> str:
    return "\n\n".join(p for p in parts if p)
