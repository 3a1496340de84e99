"""When an answer is a refusal and when it is not: the model's "I don't know" against a
statement about the subject, and the relevance gate in every retrieval mode."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from assistant.prompt import REFUSAL_SENTENCE, Turn
from assistant.service import Assistant, AssistantOptions, _without_dont_know
from assistant.sources import Source
from index.embedding import SentenceTransformerEmbedder
from index.filters import Principal
from index.hybrid import HybridRetriever, RetrievalOptions
from index.keyword import KeywordIndex, Tokenizer
from ingest.sync import Ingester
from tests.conftest import drop_store, markdown, new_store, write

TODAY = dt.date(2026, 11, 28)


def test_a_statement_that_something_is_not_covered_is_an_answer() -> None:
    text = (
        "Experimental treatments are not covered in the Standard plan [1]. Trials are covered [2]."
    )
    assert _without_dont_know(text) == text


def test_a_later_not_covered_statement_is_kept() -> None:
    text = "Trials are covered [2]. Cosmetic surgery is not mentioned in the exclusions list [1]."
    assert _without_dont_know(text) == text


def test_the_model_saying_the_sources_do_not_answer_is_a_refusal() -> None:
    assert _without_dont_know(REFUSAL_SENTENCE) == ""
    assert _without_dont_know("This is not mentioned in the provided sources.") == ""
    assert (
        _without_dont_know(
            "KAIG keeps prompts 90 days [1]. The rest is not covered in the sources."
        )
        == "KAIG keeps prompts 90 days [1]."
    )


class _Echo:
    """Answers with the first sentence of its first source, cited."""

    name = "echo"

    def __init__(self) -> None:
        self.calls = 0

    def stream(self, question: str, sources: Sequence[Source]) -> Iterator[str]:
        self.calls += 1
        yield sources[0].text.splitlines()[-1] + " [1]"

    def rewrite(self, history: Sequence[Turn], question: str) -> str | None:
        return None


@pytest.fixture(scope="module")
def keyword_retriever(
    tmp_path_factory: pytest.TempPathFactory,
    chroma_client: Any,
    embedder: SentenceTransformerEmbedder,
) -> Iterator[HybridRetriever]:
    root = tmp_path_factory.mktemp("kb")
    write(
        root / "it" / "kaig-faq.md",
        markdown(
            "kaig-faq",
            "# KAIG FAQ\n\n## Retention\n\nKAIG keeps prompts and answers for 90 days.\n",
            doc_type="faq",
            owner="Nadia Haddad",
            last_reviewed="2026-09-01",
        ),
    )
    store = new_store(chroma_client)
    Ingester(store, embedder).sync(root)
    keyword = KeywordIndex(store, None, Tokenizer())
    yield HybridRetriever(store, embedder, keyword, RetrievalOptions(mode="keyword"))
    drop_store(chroma_client, store)


def test_keyword_mode_answers_a_question_its_sources_answer(
    keyword_retriever: HybridRetriever, embedder: SentenceTransformerEmbedder
) -> None:
    generator = _Echo()
    assistant = Assistant(
        keyword_retriever, generator, embedder, today=lambda: TODAY, options=AssistantOptions()
    )
    answer = assistant.ask("How long does KAIG keep prompts?", principal=Principal())
    assert generator.calls == 1, answer.refusal_reason
    assert not answer.refused
    assert "90 days" in answer.answer


def test_keyword_mode_still_refuses_what_nothing_answers(
    keyword_retriever: HybridRetriever, embedder: SentenceTransformerEmbedder
) -> None:
    generator = _Echo()
    assistant = Assistant(
        keyword_retriever, generator, embedder, today=lambda: TODAY, options=AssistantOptions()
    )
    answer = assistant.ask(
        "Who designed the KAIG logo and which font does it use?", principal=Principal()
    )
    assert answer.refused
    assert answer.refusal_reason == "no relevant source"
    assert generator.calls == 0
