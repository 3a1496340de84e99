"""The product's own example questions over the shipped corpus/, with the real local model
(slow tier): a procedure answered with its named steps however it is typed, a comparison that
cites both documents, prior projects listed, and a superseded value never given as current.
Assembled from `Settings` by api/assembly.py, as `kb serve` assembles it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from api.assembly import (
    build_answer_embedder,
    build_assistant,
    build_generator,
    build_ingester,
    build_retriever,
    build_store,
)
from api.settings import Settings
from assistant.prompt import Turn
from assistant.service import Answer, Assistant
from evals.bench_answers import GOLDEN_TODAY, golden_items
from evals.golden import Part
from index.embedding import Embedder, SentenceTransformerEmbedder
from index.filters import Principal
from index.store import ChromaStore

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).parents[1] / "corpus"
EMPLOYEE = Principal.of("all")
_STEP = re.compile(r"\s*(?:\d+[.)]|[-*]|step \d+\b)", re.I)  # a numbered or bulleted line


@dataclass(frozen=True)
class Base:
    settings: Settings
    store: ChromaStore
    embedder: Embedder  # the answering embedder (cached), as the service uses


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Base:
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("data"), generator="local")
    if not settings.llm_model_path.is_file():
        pytest.fail(f"{settings.llm_model_path} missing: `make install` assembles it")
    store = build_store(settings)
    report = build_ingester(settings, store, embedder).sync(CORPUS)
    assert not report.failed, report.failed
    return Base(settings, store, build_answer_embedder(settings, embedder))


def _built(base: Base, generator: str, judge: Literal["auto", "off"] = "off") -> Assistant:
    settings = base.settings.model_copy(update={"generator": generator, "answer_judge": judge})
    made = build_generator(settings, base.embedder)
    assert made.name == generator
    retriever = build_retriever(settings, base.store, base.embedder)
    return build_assistant(settings, retriever, base.embedder, made)


@pytest.fixture(scope="module")
def assistant(base: Base) -> Assistant:
    return _built(base, "local")


def _cited(answer: Answer) -> set[str]:
    return {c.doc_id for c in answer.citations}


def test_the_deployment_procedure_whatever_the_spelling(assistant: Assistant) -> None:
    spellings = [
        "How do we deploy document processing?",
        "how do we deploy document processing",
        "HOW DO WE DEPLOY DOCUMENT PROCESSING?",
        "  How do we deploy  document processing ?! ",
    ]
    answers = []
    for spelling in spellings:
        answers.append(assistant.ask(spelling, principal=EMPLOYEE))
        # Another question in between: the model's cache then holds a different prompt, and
        # an answer must not depend on what was asked before.
        assistant.ask("Has anyone here automated invoice matching?", principal=EMPLOYEE)
    first = answers[0]
    assert not first.refused, first
    assert "doc-processing-playbook-v2" in _cited(first)
    assert "doc-processing-playbook-v1" not in _cited(first)
    steps = [line for line in first.answer.splitlines() if _STEP.match(line)]
    assert len(steps) >= 4, first.answer  # numbered steps, not a paragraph
    named = ("classif", "sample", "threshold", "review", "shadow", "pilot", "ocr")
    assert sum(word in first.answer.lower() for word in named) >= 4, first.answer
    assert [a.answer for a in answers[1:]] == [first.answer] * 3  # same answer, however typed


def test_a_comparison_cites_both_documents(assistant: Assistant) -> None:
    answer = assistant.ask(
        "What was the first-year cost of the AP invoice matching project versus the Ask "
        "Kestrel chatbot?",
        principal=EMPLOYEE,
    )
    assert not answer.refused, answer
    cited = _cited(answer)
    assert cited & {"ap-invoice-matching-review", "ap-invoice-matching-showcase"}, answer.answer
    assert "ask-kestrel-lessons" in cited, answer.answer


def test_prior_projects_are_listed(assistant: Assistant) -> None:
    answer = assistant.ask("Has anyone here automated invoice matching?", principal=EMPLOYEE)
    assert not answer.refused, answer
    assert "AP Invoice Matching" in answer.answer
    assert _cited(answer) & {"ap-invoice-matching-review", "ap-invoice-matching-showcase"}


def test_a_superseded_value_is_not_given_as_current(assistant: Assistant) -> None:
    answer = assistant.ask(
        "How many sample documents per document type do we need? Someone said 300.",
        principal=EMPLOYEE,
    )
    assert not answer.refused, answer
    assert "500" in answer.answer
    assert "doc-processing-playbook-v1" not in _cited(answer)


def test_two_current_sources_that_disagree_are_both_named(base: Base) -> None:
    """The CoE FAQ's 5 working days for triage against the finance FAQ's 10: the answer ends
    with a note giving both values, and a warning names both documents (the extractive
    composer, whose answer is the same on every run)."""
    answer = _built(base, "extractive").ask(
        "The CoE FAQ says my AI-01 gets triaged in 5 working days but a colleague says 10. "
        "Which is it?",
        principal=EMPLOYEE,
    )
    assert not answer.refused, answer
    (found,) = answer.disagreements
    assert {found.first_value, found.second_value} == {"5 working days", "10 working days"}
    assert found.note() in answer.answer.splitlines()  # after the answer, before a stale warning
    titles = {c.n: c.title for c in answer.citations}  # both are cited, though one was not
    (warning,) = [w for w in answer.warnings if "which is right" in w]  # before the note
    assert f'"{titles[found.first]}"' in warning
    assert f'"{titles[found.second]}"' in warning


def test_a_follow_up_is_answered_from_the_documents_it_goes_on_from(assistant: Assistant) -> None:
    first = "How do we deploy document processing?"
    said = assistant.ask(first, principal=EMPLOYEE)
    history = [Turn("user", first), Turn("assistant", said.answer)]
    answer = assistant.ask(
        "What approvals does that need before go-live?", principal=EMPLOYEE, history=history
    )
    assert not answer.refused, answer
    assert _cited(answer) & {"doc-processing-playbook-v2", "go-live-checklist"}, answer.answer
    assert "ARB" in answer.answer, answer.answer
    # a complete question after it is answered as if asked alone
    alone = assistant.ask("When are the CoE office hours?", principal=EMPLOYEE)
    after = assistant.ask("When are the CoE office hours?", principal=EMPLOYEE, history=history)
    assert after.answer == alone.answer


def test_the_judge_refuses_more_unanswerable_questions_and_keeps_the_answerable(
    base: Base,
) -> None:
    """The extractive composer with and without the local model judging its answers, on the
    golden set's report part (the threshold was chosen on the other part): every unanswerable
    question and as many answerable ones, spread over the types."""
    answerable, unanswerable = golden_items("golden")
    report = [i for i in unanswerable if i.part is Part.REPORT]
    kept = [i for i in answerable if i.part is Part.REPORT][::3][: len(report)]
    today = dt.date.fromisoformat(GOLDEN_TODAY)
    base = Base(base.settings.model_copy(update={"today": today}), base.store, base.embedder)
    plain, judged = _built(base, "extractive"), _built(base, "extractive", "auto")
    refused = {
        name: [a.ask(i.question, principal=i.principal).refused for i in report + kept]
        for name, a in (("plain", plain), ("judged", judged))
    }
    n = len(report)
    assert sum(refused["judged"][:n]) > sum(refused["plain"][:n])  # it refuses more of them
    answered = [not r for r in refused["judged"][n:]]
    assert sum(answered) / len(answered) >= 0.9  # and keeps the answerable ones answered
