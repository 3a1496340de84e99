"""End to end with the real local model (slow tier): llama-cpp on the packaged GGUF, and the
same model behind llama-cpp's OpenAI-compatible server for the `openai` backend."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from assistant.generators import GeneratorConfig, LlamaCppChat, OpenAIChat, PromptedGenerator
from assistant.service import Assistant, AssistantOptions
from assistant.sources import excerpts, number_sources
from index.embedding import SentenceTransformerEmbedder
from index.filters import Principal
from index.hybrid import HybridRetriever
from tests.conftest import free_port
from tests.test_assistant import TODAY, retriever  # noqa: F401 - the small knowledge base

pytestmark = pytest.mark.slow


class RecordingChat:
    """The real model, with every prompt it was sent kept for inspection."""

    def __init__(self, chat: Any) -> None:
        self.chat = chat
        self.prompts: list[str] = []

    def stream_chat(
        self, messages: list[dict[str, str]], max_tokens: int, *, refusal: bool = False
    ) -> Iterator[str]:
        self.prompts.append("\n".join(m["content"] for m in messages))
        return self.chat.stream_chat(messages, max_tokens, refusal=refusal)

    def refusal_probability(self, messages: list[dict[str, str]]) -> float:
        return float(self.chat.refusal_probability(messages))


@pytest.fixture(scope="module")
def model_path() -> Any:
    from api.settings import Settings

    path = Settings().llm_model_path
    if not path.is_file():
        pytest.fail(f"{path} missing: `make install` assembles it")
    return path


@pytest.fixture(scope="module")
def local_chat(model_path: Any) -> RecordingChat:
    """The local model as the product builds it, refusal gate at its default."""
    from api.settings import Settings

    gate = Settings().llm_refusal_probability
    return RecordingChat(LlamaCppChat(model_path, 4096, None, refusal_probability=gate))


def _assistant(retriever: HybridRetriever, chat: Any, embedder: Any) -> Assistant:  # noqa: F811
    """As the product builds it: sources cut to their closest 300 words, answers of 256
    tokens at most."""
    focus = functools.partial(excerpts, embedder=embedder, max_words=300)
    generator = PromptedGenerator("local", chat, max_tokens=256, excerpts=focus)
    return Assistant(
        retriever, generator, embedder, today=lambda: TODAY, options=AssistantOptions()
    )


def test_a_procedure_is_answered_with_cited_steps(
    retriever: HybridRetriever,  # noqa: F811
    local_chat: RecordingChat,
    embedder: SentenceTransformerEmbedder,
) -> None:
    answer = _assistant(retriever, local_chat, embedder).ask(
        "What are the steps to get an AI project started?", principal=Principal()
    )
    assert not answer.refused, answer
    assert "AI-01" in answer.answer
    assert [c.doc_id for c in answer.citations] == ["intake"]
    assert all(c.support >= 0.55 for c in answer.citations)
    assert answer.timings_ms["first_token"] < answer.timings_ms["total"]


def test_an_unanswerable_question_is_refused(
    retriever: HybridRetriever,  # noqa: F811
    local_chat: RecordingChat,
    embedder: SentenceTransformerEmbedder,
) -> None:
    answer = _assistant(retriever, local_chat, embedder).ask(
        "Which vendor supplies the forklifts in the Monterrey warehouse?", principal=Principal()
    )
    assert answer.refused
    assert answer.citations == []


def test_the_model_weighs_refusing_more_for_a_question_its_sources_do_not_answer(
    retriever: HybridRetriever,  # noqa: F811
    local_chat: RecordingChat,
    embedder: SentenceTransformerEmbedder,
    model_path: Any,
) -> None:
    """The gate reads the model's own probability of opening with the refusal: low where the
    sources answer, higher where they are only nearby; and a gate set low enough refuses an
    answerable question in the model's words (the mechanism, not a setting to use)."""
    from api.settings import Settings

    generator = _assistant(retriever, local_chat, embedder)._generator
    assert isinstance(generator, PromptedGenerator)

    def probability(question: str) -> float:
        hits = retriever.retrieve(question, 5, today=TODAY, principal=Principal())
        p = generator.refusal_probability(question, number_sources(hits))
        assert p is not None
        return p

    answered = probability("Within how many working days does the CoE triage an intake form?")
    nearby = probability("Is there an intake form for hackathon projects in 2027?")
    gate = Settings().llm_refusal_probability  # the product's calibrated default
    assert answered < gate <= nearby, (answered, nearby)  # measured: 0.012 and 0.70
    eager = LlamaCppChat(model_path, 4096, None, refusal_probability=answered / 2)
    answer = _assistant(retriever, eager, embedder).ask(
        "Within how many working days does the CoE triage an intake form?", principal=Principal()
    )
    assert answer.refused, answer
    assert answer.refusal_reason == "the model found no answer"


def test_a_stale_source_is_warned_about(
    retriever: HybridRetriever,  # noqa: F811
    local_chat: RecordingChat,
    embedder: SentenceTransformerEmbedder,
) -> None:
    answer = _assistant(retriever, local_chat, embedder).ask(
        "How long does KAIG keep prompts and answers?", principal=Principal()
    )
    assert not answer.refused, answer
    assert "90 days" in answer.answer
    assert any(c.stale and c.doc_id == "kaig-faq" for c in answer.citations)
    assert answer.warnings
    assert "past review date" in answer.answer


def test_a_restricted_document_never_reaches_the_prompt(
    retriever: HybridRetriever,  # noqa: F811
    local_chat: RecordingChat,
    embedder: SentenceTransformerEmbedder,
) -> None:
    before = len(local_chat.prompts)
    answer = _assistant(retriever, local_chat, embedder).ask(
        "What does DocuSift charge per invoice page?", principal=Principal.of("sales")
    )
    assert all("0.045" not in p for p in local_chat.prompts[before:])
    assert "0.045" not in answer.answer
    assert all(c.doc_id != "docusift-prices" for c in answer.citations)


@pytest.fixture(scope="module")
def openai_server(model_path: Any) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail("llama_cpp.server did not start within 180 s")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_openai_backend_against_a_real_compatible_server(
    retriever: HybridRetriever,  # noqa: F811
    openai_server: str,
    embedder: SentenceTransformerEmbedder,
) -> None:
    chat = OpenAIChat(GeneratorConfig(base_url=openai_server, model="local", timeout_s=300))
    answer = _assistant(retriever, chat, embedder).ask(
        "Within how many working days does the CoE triage an intake form?", principal=Principal()
    )
    assert not answer.refused, answer
    assert "10" in answer.answer
    assert answer.citations[0].doc_id == "intake"


def test_the_openai_backend_reports_an_unreachable_endpoint() -> None:
    from assistant.generators import GeneratorError

    chat = OpenAIChat(
        GeneratorConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", timeout_s=2, retries=1)
    )
    with pytest.raises(GeneratorError, match="failed"):
        list(chat.stream_chat([{"role": "user", "content": "hi"}], 8))
