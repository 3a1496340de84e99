"""Generator backends' logic without a real model: the local model's lock, the OpenAI
client's retries, and quoted procedures (the slow tier runs the real model and a real
server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.extractive import ExtractiveGenerator
from assistant.generators import (
    GeneratorConfig,
    GeneratorError,
    LlamaCppChat,
    OpenAIChat,
    PromptedGenerator,
    Replies,
)
from assistant.shapes import Shape
from index.embedding import SentenceTransformerEmbedder
from tests.test_shapes import PROCEDURE, _source


class _FakeLlama:
    """Streams a few words per completion, a little slowly, like llama.cpp's generator."""

    def __init__(self) -> None:
        self.completions = 0

    def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        self.completions += 1
        for word in ("KAIG ", "keeps ", "prompts ", "90 ", "days."):
            time.sleep(0.01)
            yield {"choices": [{"delta": {"content": word}}]}


def _chat() -> tuple[LlamaCppChat, _FakeLlama]:
    chat = LlamaCppChat(Path("unused.gguf"), 512, 1, 0.0)
    fake = _FakeLlama()
    chat._llm = fake  # loaded: _load() returns it
    return chat, fake


def test_a_stalled_stream_reader_does_not_block_the_next_answer() -> None:
    chat, fake = _chat()
    stalled = chat.stream_chat([{"role": "user", "content": "a"}], 16)
    assert next(stalled) == "KAIG "  # a client that read one token and stopped reading
    done = threading.Event()
    second: list[str] = []

    def other_client() -> None:
        second.extend(chat.stream_chat([{"role": "user", "content": "b"}], 16))
        done.set()

    threading.Thread(target=other_client, daemon=True).start()
    assert done.wait(timeout=10), "the second answer waited for the stalled reader"
    assert "".join(second) == "KAIG keeps prompts 90 days."
    assert fake.completions == 2
    stalled.close()


def test_a_prompt_asked_again_is_answered_from_the_replies_kept() -> None:
    chat, fake = _chat()
    asked = [{"role": "user", "content": "How long are prompts kept?"}]
    first = list(chat.stream_chat(asked, 16, refusal=True))
    again = list(chat.stream_chat([dict(m) for m in asked], 16, refusal=True))
    assert again == first == ["KAIG ", "keeps ", "prompts ", "90 ", "days."]
    assert fake.completions == 1  # the model did not run again
    # Anything that decides the reply makes another prompt: a word of the sources, the length.
    list(chat.stream_chat([{"role": "user", "content": "How long are prompts kept? "}], 16))
    list(chat.stream_chat(asked, 32, refusal=True))
    assert fake.completions == 3


class _HeldLlama(_FakeLlama):
    """Writes its first word, then waits for `go` before the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.go = threading.Event()

    def create_chat_completion(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for n, part in enumerate(super().create_chat_completion(**kwargs)):
            if n == 1:
                assert self.go.wait(timeout=10)
            yield part


def test_a_reply_cut_short_is_not_kept_and_none_are_when_off() -> None:
    chat = LlamaCppChat(Path("unused.gguf"), 512, 1, 0.0)
    fake = _HeldLlama()
    chat._llm = fake
    asked = [{"role": "user", "content": "a"}]
    stream = chat.stream_chat(asked, 16)
    assert next(stream) == "KAIG "
    stream.close()  # its reader left: the rest is never written
    fake.go.set()
    assert "".join(chat.stream_chat(asked, 16)) == "KAIG keeps prompts 90 days."
    assert fake.completions == 2
    off = LlamaCppChat(Path("unused.gguf"), 512, 1, 0.0, replies_kept=0)
    off_model = _FakeLlama()
    off._llm = off_model
    for _ in range(2):
        list(off.stream_chat(asked, 16))
    assert off_model.completions == 2


def test_replies_keep_the_most_recently_used() -> None:
    replies = Replies(2)
    for key in ("a", "b"):
        replies.put(key, key.upper())
    assert replies.get("a") == "A"  # used: "b" is now the oldest
    replies.put("c", "C")
    assert (replies.get("a"), replies.get("b"), replies.get("c")) == ("A", None, "C")


def test_a_reader_that_stops_early_stops_generation() -> None:
    chat, _ = _chat()
    stream = chat.stream_chat([{"role": "user", "content": "a"}], 16)
    assert next(stream) == "KAIG "
    stream.close()
    assert chat._lock.acquire(timeout=5), "generation kept the model after the reader left"
    chat._lock.release()


def test_a_model_error_reaches_the_reader() -> None:
    chat = LlamaCppChat(Path("/nonexistent/model.gguf"), 512, 1, 0.0)
    with pytest.raises(Exception, match="does not exist"):
        list(chat.stream_chat([{"role": "user", "content": "a"}], 16))


def _endpoint(statuses: list[int]) -> tuple[GeneratorConfig, list[int], Any]:
    """An OpenAI-compatible endpoint that answers with these statuses, then streams 'ok'."""
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = statuses[len(seen)] if len(seen) < len(statuses) else 200
        seen.append(status)
        if status != 200:
            return httpx.Response(status, text="busy")
        body = 'data: {"choices": [{"delta": {"content": "ok"}}]}\n\ndata: [DONE]\n\n'
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    return GeneratorConfig(base_url="http://127.0.0.1:9/v1", retries=2), seen, handler


@pytest.mark.parametrize(("status", "retried"), [(503, True), (500, True), (400, False)])
def test_server_errors_are_retried_and_client_errors_are_not(
    monkeypatch: pytest.MonkeyPatch, status: int, retried: bool
) -> None:
    config, seen, handler = _endpoint([status])
    transport = httpx.MockTransport(handler)

    def stream(*args: Any, **kwargs: Any) -> Any:
        return httpx.Client(transport=transport).stream(*args, **kwargs)

    monkeypatch.setattr(httpx, "stream", stream)
    monkeypatch.setattr(time, "sleep", lambda _: None)
    chat = OpenAIChat(config)
    if retried:
        assert "".join(chat.stream_chat([{"role": "user", "content": "a"}], 8)) == "ok"
        assert seen == [status, 200]
    else:
        with pytest.raises(GeneratorError) as caught:
            list(chat.stream_chat([{"role": "user", "content": "a"}], 8))
        assert caught.value.status == status
        assert seen == [status]


class _RecordingModel:
    """A chat model that answers one fixed sentence and records that it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    def stream_chat(
        self, messages: list[dict[str, str]], max_tokens: int, *, refusal: bool = False
    ) -> Iterator[str]:
        self.asked += 1
        yield "Retold by the model. [1]"


def test_a_procedure_the_sources_list_is_quoted_not_retold(
    embedder: SentenceTransformerEmbedder,
) -> None:
    source = _source(1, "playbook", PROCEDURE, title="Playbook: deploying document processing")
    model = _RecordingModel()
    composer = ExtractiveGenerator(embedder)
    quoting = PromptedGenerator("local", model, 256, composer=composer, quoted=[Shape.PROCEDURE])
    lines = "".join(quoting.stream("How do we deploy document processing?", [source]))
    assert model.asked == 0
    assert lines.splitlines()[1] == (
        "2. Collect samples: Collect 500 sample documents per document type from the last "
        "12 months. [1]"
    )
    fact = "".join(quoting.stream("What sample size does document processing need?", [source]))
    assert (fact, model.asked) == ("Retold by the model. [1]", 1)
    retelling = PromptedGenerator("local", model, 256)
    told = "".join(retelling.stream("How do we deploy document processing?", [source]))
    assert (told, model.asked) == ("Retold by the model. [1]", 2)


def test_prior_projects_are_listed_as_the_composer_lists_them(
    embedder: SentenceTransformerEmbedder,
) -> None:
    sources = [
        _source(
            1,
            "ap-review",
            "AP Invoice Matching automated the matching of invoices; touchless rate 82%.",
            "lessons_learned",
            project="AP Invoice Matching",
            vendor="DocuSift",
            outcome="success",
            year=2025,
        ),
        _source(2, "playbook", "Invoice matching is a document-processing use case.", "playbook"),
    ]
    question = "Has anyone here automated invoice matching?"
    model = _RecordingModel()
    composer = ExtractiveGenerator(embedder)
    both = [Shape.PROCEDURE, Shape.PROJECTS]
    listed = "".join(
        PromptedGenerator("local", model, 256, composer=composer, quoted=both).stream(
            question, sources
        )
    )
    assert listed.startswith("- AP Invoice Matching (coe, DocuSift, success, 2025): ")
    assert model.asked == 0
    steps_only = PromptedGenerator("local", model, 256, composer=composer, quoted=[Shape.PROCEDURE])
    assert "".join(steps_only.stream(question, sources)) == "Retold by the model. [1]"
    assert model.asked == 1
