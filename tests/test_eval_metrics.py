"""The answer metrics of evals/answers.py on fixed, made-up answers (no model, no store)."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.service import Answer, Citation
from evals.answers import (
    Faithfulness,
    PageRef,
    Scored,
    by_group,
    citation_match,
    cited_sentences,
    doc_hit,
    faithfulness,
    key_fact_recall,
    leaked_docs,
    parse_reference,
    quality,
    rate,
    refusal_reasons,
    sentence_supported,
    spread,
    warned_stale,
    without_warning,
)

THRESHOLD = 0.55


def cite(n: int, doc_id: str = "doc", path: str = "a/x.pdf", **kw: Any) -> Citation:
    fields: dict[str, Any] = {
        "title": doc_id.title(),
        "page": 4,
        "section": "",
        "stale": False,
        "support": 0.9,
        "owner": "owner",
        "review_date": None,
        "link": f"/v1/documents/{doc_id}/source",
    }
    fields.update(kw)
    return Citation(n=n, doc_id=doc_id, path=path, **fields)


def answer(text: str, citations: list[Citation], refused: bool = False, **kw: Any) -> Answer:
    return Answer("q", "q", text, refused, citations, kw.pop("warnings", []), **kw)


# -- contoso reference and citation match ------------------------------------------------------


def test_parse_reference_reads_the_trailing_citation() -> None:
    ref = parse_reference("Some truth with [other.pdf#page=2] inside. [Plan_B.pdf#page=12]")
    assert ref == PageRef("Plan_B.pdf", 12)


def test_parse_reference_rejects_a_truth_without_one() -> None:
    with pytest.raises(ValueError, match="reference"):
        parse_reference("No reference here.")


@pytest.mark.parametrize(
    ("path", "page", "expected"),
    [
        ("roots/0-docs/Plan_B.pdf", 12, True),
        ("roots/0-docs/Plan_B.pdf", 11, True),
        ("roots/0-docs/Plan_B.pdf", 13, True),
        ("roots/0-docs/Plan_B.pdf", 14, False),
        ("roots/0-docs/Plan_B.pdf", None, False),
        ("roots/0-docs/Other_Plan_B.pdf", 12, False),
    ],
)
def test_citation_match_tolerates_one_page(path: str, page: int | None, expected: bool) -> None:
    found = answer("Text. [1]", [cite(1, path=path, page=page)])
    assert citation_match(found, PageRef("Plan_B.pdf", 12)) is expected


def test_citation_match_needs_only_one_matching_citation() -> None:
    found = answer("A. [1]\nB. [2]", [cite(1, path="x.pdf"), cite(2, path="d/Plan_B.pdf", page=12)])
    assert citation_match(found, PageRef("Plan_B.pdf", 12))


def test_a_refused_answer_never_matches() -> None:
    refused = answer("I don't know.", [cite(1, path="Plan_B.pdf", page=12)], refused=True)
    assert not citation_match(refused, PageRef("Plan_B.pdf", 12))


# -- sentences and faithfulness ----------------------------------------------------------------


def test_without_warning_drops_the_trailing_warning_paragraph() -> None:
    text = "The fee is 10 dollars. [1]\n\nWarning: [1] past review date; it may be out of date."
    assert without_warning(text) == "The fee is 10 dollars. [1]"
    assert without_warning("No warning here. [1]") == "No warning here. [1]"


def test_cited_sentences_skip_connectives_and_the_warning() -> None:
    text = (
        "Here is what applies:\n"
        "The fee is 10 dollars per visit. [1]\n"
        "Refunds take five working days. [1][2]\n\n"
        "Warning: [2] past review date; the content may be out of date."
    )
    assert cited_sentences(text) == [
        ("The fee is 10 dollars per visit.", [1]),
        ("Refunds take five working days.", [1, 2]),
    ]


@pytest.mark.parametrize(
    ("cited", "expected"),
    [([1], True), ([1, 2], False), ([3], False), ([], False), ([1, 4], True)],
)
def test_sentence_supported_needs_every_cited_source(cited: list[int], expected: bool) -> None:
    support = {1: 0.8, 2: 0.3, 4: THRESHOLD}
    assert sentence_supported(cited, support, THRESHOLD) is expected


def test_faithfulness_counts_supported_cited_sentences_and_removed_ones() -> None:
    found = answer(
        "In short:\nThe fee is 10 dollars per visit. [1]\nRefunds take five working days. [2]",
        [cite(1, support=0.9), cite(2, "other", support=0.4)],
        unsupported=["A removed claim about parking spaces."],
    )
    result = faithfulness(found, THRESHOLD)
    assert result == Faithfulness(supported=1, sentences=2, removed=1)
    assert result.share == 0.5
    assert result.share_before_check == pytest.approx(1 / 3)


def test_faithfulness_of_a_refusal_has_no_sentences() -> None:
    refused = answer("I don't know. [1]", [], refused=True, unsupported=["x y z.", "a b c."])
    result = faithfulness(refused, THRESHOLD)
    assert result == Faithfulness(0, 0, 2)
    assert result.share is None
    assert Faithfulness(0, 0, 0).share_before_check is None


# -- golden-set metrics ------------------------------------------------------------------------


def test_key_fact_recall_is_case_and_space_insensitive() -> None:
    text = "Requests are kept for 30  days, then deleted by Stratus ai. [1]"
    assert key_fact_recall(text, ["30 days", "Stratus AI", "13 months", "day 31"]) == 0.5
    assert key_fact_recall(text, []) is None


def test_doc_hit_and_leaks() -> None:
    found = answer(
        "A. [1]\nB. [2]",
        [cite(1, "policy"), cite(2, "old-faq")],
        nearby=[{"doc_id": "secret-plan", "title": "Secret"}],
    )
    assert doc_hit(found, ["policy", "guide"])
    assert not doc_hit(found, ["guide"])
    assert leaked_docs(found, ["old-faq", "secret-plan", "unrelated"]) == ["old-faq", "secret-plan"]
    assert leaked_docs(found, []) == []


def test_warned_stale_reads_the_warnings() -> None:
    assert warned_stale(answer("A. [1]", [cite(1)], warnings=["[1] is past its review date"]))
    assert not warned_stale(answer("A. [1]", [cite(1)]))


# -- selection and aggregation -----------------------------------------------------------------


def test_spread_picks_evenly_and_in_order() -> None:
    items = list(range(10))
    assert spread(items, 5) == [0, 2, 4, 6, 8]
    assert spread(items, 3) == [0, 3, 6]
    assert spread(items, None) == items
    assert spread(items, 50) == items
    assert spread(items, 0) == []


def test_rate_of_nothing_is_none() -> None:
    assert rate([]) is None
    assert rate([True, False, False, True]) == 0.5


def scored(key: str, answerable: bool, refused: bool, **kw: Any) -> Scored:
    defaults: dict[str, Any] = {
        "group": "g",
        "refusal_reason": "no relevant source" if refused else None,
        "faith": Faithfulness(0, 0, 0) if refused else Faithfulness(2, 2, 1),
        "first_token_ms": None if refused else 100.0,
        "total_ms": 200.0,
        "wall_ms": 210.0,
    }
    defaults.update(kw)
    return Scored(key=key, answerable=answerable, refused=refused, **defaults)


def test_quality_on_contoso_like_rows() -> None:
    rows = [
        scored("dev:1", True, False, citation_match=True),
        scored("dev:2", True, False, citation_match=False),
        scored("dev:3", True, True, citation_match=False),
        scored("dontknow:1", False, True),
        scored("dontknow:2", False, False, faith=Faithfulness(1, 2, 0)),
    ]
    out = quality(rows)
    assert out["answerable"] == 3
    assert out["unanswerable"] == 2
    assert out["answered_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert out["refusal_rate"] == 0.5
    assert out["citation_match"] == pytest.approx(1 / 3, abs=1e-4)
    assert out["citation_match_when_answered"] == 0.5
    assert out["faithfulness"] == pytest.approx(5 / 6, abs=1e-4)  # 2 + 2 + 1 of 2 + 2 + 2
    assert out["faithfulness_before_check"] == pytest.approx(5 / 8, abs=1e-4)
    assert out["removed_per_answer"] == pytest.approx(2 / 3, abs=1e-3)
    assert "leaks" not in out
    assert "key_fact_recall" not in out


def test_quality_on_golden_like_rows() -> None:
    rows = [
        scored("a-1", True, False, key_fact_recall=1.0, doc_hit=True, must_warn_stale=True),
        scored("a-2", True, False, key_fact_recall=0.5, doc_hit=False, warned=True),
        scored(
            "a-3", True, False, key_fact_recall=0.0, doc_hit=True, must_warn_stale=True, warned=True
        ),
        scored("a-4", False, True, leaks=("secret",)),
    ]
    out = quality(rows, golden=True)
    assert out["key_fact_recall"] == 0.5
    assert out["doc_hit"] == pytest.approx(2 / 3, abs=1e-4)
    assert out["leaks"] == 1
    assert out["stale_questions"] == 2
    assert out["stale_warning_rate"] == 0.5
    assert out["refusal_rate"] == 1.0


def test_refusal_reasons_and_groups() -> None:
    rows = [
        scored("1", True, True, group="x.pdf"),
        scored("2", True, False, group="x.pdf", citation_match=True),
        scored("3", False, True, group="dont_know", refusal_reason="the model found no answer"),
    ]
    assert refusal_reasons(rows) == {"no relevant source": 1, "the model found no answer": 1}
    groups = by_group(rows)
    assert list(groups) == ["dont_know", "x.pdf"]
    assert groups["x.pdf"]["answered_rate"] == 0.5
    assert groups["dont_know"]["refusal_rate"] == 1.0


def test_refusal_is_also_reported_without_the_dont_knows_the_documents_answer() -> None:
    from evals.bench_answers import DONT_KNOW, DONT_KNOW_ANSWERED, aggregates

    rows = [
        scored("1", True, False, group="x.pdf", citation_match=True),
        scored("2", False, True, group=DONT_KNOW),
        scored("3", False, False, group=DONT_KNOW),
        scored("4", False, False, group=DONT_KNOW_ANSWERED),
    ]
    out = aggregates(rows, golden=False)
    assert out["refusal_rate"] == pytest.approx(1 / 3, abs=1e-4)  # the dataset's own labels
    assert out["refusal_rate_without_answered_in_docs"] == 0.5
    assert "refusal_rate_without_answered_in_docs" not in aggregates(rows[:3], golden=False)
