"""Bodies of the OpenAI-compatible routes (`POST /v1/chat/completions`, `GET /v1/models`).

They follow OpenAI's Chat Completions shapes closely enough for its SDKs and for chat UIs to
work unchanged. Requests allow unknown fields (`extra="allow"`): clients send many we have no
use for (`tools`, `top_p`, `seed`, ...), and one written for OpenAI must not fail on them.
Responses add the knowledge base's own fields (`citations`, `warnings`, `refused`,
`answer_id`) at the top level, where OpenAI clients keep unknown fields rather than drop them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from api.schemas import SearchFiltersIn
from assistant.prompt import Turn
from assistant.service import Citation
from index.filters import SearchFilters

QUESTION_MAX_CHARS = 2000  # the same limit as `POST /v1/ask`
HISTORY_TURNS = 20  # earlier turns kept; a chat client sends the whole conversation
TURN_MAX_CHARS = 8000
SOURCES_HEADING = "Sources:"  # starts the block appended to every answer's content

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class TextPart(BaseModel):
    """One part of a message's content; only text parts carry anything the KB can use."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["text"])
    text: str | None = None

    @field_validator("type")
    @classmethod
    def _text_only(cls, kind: str) -> str:
        if kind not in {"text", "refusal"}:
            raise ValueError(f"only text content parts are supported, not '{kind}'")
        return kind


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Role
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type == "text" and p.text)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


_EXAMPLES: list[JsonValue] = [
    {
        "model": "kb",
        "messages": [{"role": "user", "content": "How do we deploy document processing?"}],
    },
    {
        "model": "kb",
        "stream": True,
        "messages": [
            {"role": "user", "content": "What does DocuSift charge?"},
            {"role": "assistant", "content": "DocuSift charges GBP 0.045 per page [1]."},
            {"role": "user", "content": "Is that per invoice or per page?"},
        ],
        "filters": {"department": "finance"},
    },
]


class ChatCompletionRequest(BaseModel):
    """An OpenAI Chat Completions request. The knowledge base answers the last user message,
    reading earlier user and assistant messages as the conversation it follows up on."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": _EXAMPLES})

    model: str | None = Field(
        None,
        description="Any name; echoed back. The KB answers with its configured generator "
        "whatever is named here (`GET /v1/models` lists that one).",
    )
    messages: list[ChatMessageIn] = Field(
        min_length=1,
        description="The conversation, oldest first; the last message must be the user's "
        "question. system and developer messages are ignored: clients cannot change the KB's "
        "grounding rules. tool messages are ignored too.",
    )
    stream: bool | None = Field(False, description="Server-Sent Events, as OpenAI sends them.")
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, description="Accepted for compatibility; not used.")
    temperature: float | None = Field(None, description="Accepted; the generator's own is used.")
    max_tokens: int | None = Field(None, description="Accepted; `KB_LLM_MAX_TOKENS` applies.")
    max_completion_tokens: int | None = Field(None, description="As `max_tokens`.")
    n: int | None = Field(1, description="Only 1: the KB gives one checked answer.")
    filters: SearchFiltersIn | None = Field(
        None, description="Not OpenAI's: which documents to draw from, as in `POST /v1/ask`."
    )

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int | None) -> int | None:
        if n not in (None, 1):
            raise ValueError(f"n={n} is not supported: the knowledge base gives one answer (n=1)")
        return n

    @field_validator("messages")
    @classmethod
    def _ends_with_a_question(cls, messages: list[ChatMessageIn]) -> list[ChatMessageIn]:
        last = messages[-1]
        if last.role != "user":
            raise ValueError(
                f"the last message must be the user's question (role 'user'), not '{last.role}'"
            )
        question = last.text().strip()
        if not question:
            raise ValueError("the last message (the question) has no text")
        if len(question) > QUESTION_MAX_CHARS:
            raise ValueError(f"the question is over {QUESTION_MAX_CHARS} characters")
        return messages

    def question(self) -> str:
        return self.messages[-1].text().strip()

    def history(self) -> list[Turn]:
        """Earlier user and assistant messages as turns, the last `HISTORY_TURNS` of them.
        The Sources block this API appended to its own answers is cut off, so that the
        follow-up rewriting reads the answer, not a list of file names."""
        turns = []
        for message in self.messages[:-1]:
            if message.role not in {"user", "assistant"}:
                continue
            text = message.text().split(f"\n\n{SOURCES_HEADING}\n", 1)[0].strip()
            if text:
                turns.append(Turn(message.role, text[:TURN_MAX_CHARS]))
        return turns[-HISTORY_TURNS:]

    def search_filters(self) -> SearchFilters:
        return (self.filters or SearchFiltersIn()).to_filters()

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class Usage(BaseModel):
    """Approximate counts: words and punctuation marks, not the generator's own tokens."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class CompletionChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    """OpenAI's `chat.completion`, and the KB's extras at the top level."""

    id: str = Field(description="`chatcmpl-` and the answer id.")
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    citations: list[Citation] = Field(description="The sources the [n] markers point to.")
    warnings: list[str] = Field(
        description="One per cited document past its review date, and one per pair of current "
        "sources that state different values for what the answer says."
    )
    refused: bool = Field(description="true: the knowledge base has no answer to this.")
    answer_id: str = Field(description="The id to give feedback on this answer with.")


class Delta(BaseModel):
    """What a chunk adds; fields it does not carry are left out, as OpenAI does."""

    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One Server-Sent Event of a streamed completion."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class FinalChunk(ChatCompletionChunk):
    """The chunk with `finish_reason: "stop"`. `answer` is the checked text: it can differ
    from the streamed deltas, since sentences no source supports are removed on checking."""

    citations: list[Citation]
    warnings: list[str]
    refused: bool
    answer_id: str
    answer: str


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(0, description="Unknown for a configured generator: 0.")
    owned_by: str = "coe-kb"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
