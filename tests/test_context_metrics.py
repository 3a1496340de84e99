"""The context metrics of evals/context_metrics.py, and the golden set's calibration/report
split and dataset check of evals/golden.py, on fixed inputs (no model, no store)."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from evals.bench_context import corpus_texts
from evals.calibrate_refusal import Probe, gate_rates, llm_rates
from evals.context_metrics import (
    ContextRow,
    approx_tokens,
    by_type,
    doc_recall,
    score_context,
    summarize,
    user_message,
    without_question,
    words,
)
from evals.golden import (
    DATASETS,
    GoldenQuestion,
    Part,
    dataset_problems,
    in_part,
    load_dataset,
    load_golden,
    split_parts,
)
from index.embedding import SentenceTransformerEmbedder
from index.errors import InputError
from index.store import ChromaStore
from ingest.sync import Ingester

CORPUS = Path(__file__).parents[1] / "corpus"
TODAY = dt.date(2026, 11, 28)  # the day the sets' stale labels are judged (datasets/README.md)


def row(**kw: Any) -> ContextRow:
    fields: dict[str, Any] = {
        "key": "q",
        "group": "single_fact",
        "facts": ["30 days"],
        "expected": ["a"],
        "forbidden": [],
        "source_docs": ["a", "b"],
        "context": "Prompts are kept for 30  Days.",
        "prompt": None,
        "top": 0.6,
        "threshold": 0.4,
        "prepare_ms": 20.0,
    }
    fields.update(kw)
    return score_context(**fields)


# -- context metrics --------------------------------------------------------------------------


def test_sizes_count_words_and_approximate_tokens() -> None:
    assert words("one two\nthree  four") == 4
    assert approx_tokens("one two three four five six seven eight nine ten") == 13
    assert words("") == approx_tokens("") == 0


def test_user_message_is_the_last_user_turn() -> None:
    messages = [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "example"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "Sources: x. Question: how long?"},
    ]
    assert user_message(messages) == "Sources: x. Question: how long?"
    with pytest.raises(ValueError, match="no user message"):
        user_message([{"role": "system", "content": "rules"}])


def test_without_question_drops_facts_the_question_names() -> None:
    text = "Sources: kept 90 days.\nQuestion: is it 30 days or 90 days?"
    stripped = without_question(text, "is it 30 days or 90 days?")
    assert "30 days" not in stripped
    assert "kept 90 days" in stripped


def test_doc_recall_is_the_share_of_expected_documents_present() -> None:
    assert doc_recall(["a", "c"], ["a", "b"]) == 0.5
    assert doc_recall(["a", "b"], ["a", "b"]) == 1.0
    assert doc_recall(["a"], []) is None


def test_score_context_of_an_answerable_question() -> None:
    scored = row(
        facts=["30 days", "13 months"],
        expected=["a", "z"],
        forbidden=["b"],
        source_docs=["a", "b", "a"],
        prompt="only 13 months here",
        top=0.35,
    )
    assert scored.fact_recall_context == 0.5
    assert scored.missing_facts == ("13 months",)
    assert scored.fact_recall_prompt == 0.5
    assert scored.doc_recall == 0.5
    assert (scored.sources, scored.distinct_docs) == (3, 2)
    assert scored.forbidden_in_context == ("b",)
    assert scored.gated is True
    assert (scored.prompt_words, scored.prompt_tokens) == (4, 5)
    assert scored.context_words == 6


def test_score_context_of_an_unanswerable_question_has_no_recalls() -> None:
    scored = row(facts=[], expected=[], prompt="whatever", top=0.5)
    assert scored.answerable is False
    assert scored.fact_recall_context is None
    assert scored.fact_recall_prompt is None
    assert scored.doc_recall is None
    assert scored.gated is False


def test_summaries_average_answerable_rows_and_gate_both_kinds() -> None:
    rows = [
        row(key="1", group="procedural", facts=["x", "30 days"], top=0.3),
        row(key="2", group="single_fact", prompt="30 days", must_warn_stale=True),
        row(key="3", group="unanswerable", facts=[], expected=[], top=0.2),
        row(key="4", group="unanswerable", facts=[], expected=[], top=0.9),
    ]
    overall = summarize(rows)
    assert (overall["answerable"], overall["unanswerable"]) == (2, 2)
    assert overall["fact_recall_context"] == 0.75
    assert overall["fact_recall_prompt"] == 1.0  # only row 2 was prompted
    assert overall["gated_answerable"] == 0.5
    assert overall["gated_unanswerable"] == 0.5
    assert overall["stale_source_when_must_warn"] == 0.0
    assert overall["prepare_ms"] == {"p50": 20.0, "p95": 20.0}
    per_type = by_type(rows)
    assert list(per_type) == ["procedural", "single_fact", "unanswerable"]
    assert per_type["procedural"]["fact_recall_context"] == 0.5
    assert per_type["unanswerable"]["fact_recall_context"] is None


# -- the golden set's parts -------------------------------------------------------------------


def question(qid: str, kind: str = "single_fact", answerable: bool = True) -> GoldenQuestion:
    return GoldenQuestion(
        id=qid,
        question="what is it?",
        type=kind,
        expected_docs=["a"] if answerable else [],
        key_facts=["x"] if answerable else [],
        reference_answer="r",
        principal_groups=["all"],
    )


def test_split_halves_every_stratum_of_the_golden_set() -> None:
    questions = load_golden()
    parts = split_parts(questions)
    assert set(parts) == {q.id for q in questions}
    strata = Counter((q.type, q.answerable, parts[q.id]) for q in questions)
    for q in questions:
        calibration = strata[(q.type, q.answerable, Part.CALIBRATION)]
        report = strata[(q.type, q.answerable, Part.REPORT)]
        assert calibration - report in (0, 1), (q.type, q.answerable)
    assert len(in_part(questions, Part.CALIBRATION)) + len(in_part(questions, Part.REPORT)) == len(
        questions
    )


def test_split_depends_only_on_the_ids() -> None:
    questions = [question(f"x-{i}") for i in range(7)] + [question("u-1", "unanswerable", False)]
    parts = split_parts(questions)
    assert split_parts(list(reversed(questions))) == parts
    assert parts["u-1"] is Part.CALIBRATION  # a stratum of one goes to calibration
    assert Counter(parts[f"x-{i}"] for i in range(7)) == {Part.CALIBRATION: 4, Part.REPORT: 3}


def test_refusal_rates_are_computed_per_part() -> None:
    probes = [
        Probe("a", True, 0.5, 0.1, "calibration"),
        Probe("b", True, 0.3, None, "calibration"),
        Probe("c", False, 0.45, 0.3, "report"),
        Probe("d", False, 0.2, None, "report"),
    ]
    kept, refused = gate_rates(probes[:2], 0.4)
    assert kept == 0.5
    assert math.isnan(refused)  # no unanswerable probe in that part
    assert gate_rates(probes[2:], 0.4)[1] == 0.5
    assert llm_rates(probes[2:], 0.4, 0.25)[1] == 1.0  # d by the gate, c by the model
    assert llm_rates(probes[:2], 0.4, 0.25)[0] == 0.5


# -- checking a set against the documents -----------------------------------------------------


def test_dataset_problems_names_what_does_not_hold() -> None:
    good = question("g")
    texts = {"a": "The value is X.", "old": "old text"}
    assert dataset_problems([good], texts) == []
    missing_doc = good.model_copy(update={"id": "m", "forbidden_docs": ["gone"]})
    missing_fact = good.model_copy(update={"id": "f", "key_facts": ["x", "Y  Z"]})
    not_stale = good.model_copy(update={"id": "s", "must_warn_stale": True})
    problems = dataset_problems([missing_doc, missing_fact, not_stale], texts, stale_docs=["old"])
    assert problems == [
        "m: no document 'gone'",
        "f: key fact 'Y  Z' not in a",
        "s: must_warn_stale but a is not stale",
    ]
    assert dataset_problems([not_stale], texts, stale_docs=["a"]) == []


def test_the_employee_set_is_well_formed_and_apart_from_the_golden_set() -> None:
    employee = load_dataset("employee")
    assert len(employee) >= 40
    assert all(q.id.startswith("e-") for q in employee)
    kinds = Counter(q.type.value for q in employee)
    assert kinds["unanswerable"] >= 6
    assert kinds["procedural"] >= 8
    for q in employee:
        assert (q.key_facts == []) is (not q.answerable), q.id
        if q.type.value == "superseded":
            assert q.forbidden_docs, q.id
    golden = {" ".join(q.question.lower().split()) for q in load_golden()}
    assert not golden & {" ".join(q.question.lower().split()) for q in employee}


def test_unknown_dataset_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown question set"):
        load_dataset("nope")


@pytest.mark.slow
def test_every_question_set_holds_against_the_parsed_corpus(
    embedder: SentenceTransformerEmbedder, chroma_client: object
) -> None:
    store = ChromaStore(chroma_client, "sets_chunks", "sets_docs")
    report = Ingester(store, embedder).sync(CORPUS)
    assert report.failed == [], report.failed
    texts, stale = corpus_texts(store, TODAY)
    assert len(texts) >= 60
    for name in DATASETS:
        assert dataset_problems(load_dataset(name), texts, stale) == [], name
