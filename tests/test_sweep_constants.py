"""The pure parts of evals/sweep_constants.py: choosing on a grid, counting collapsed chunks,
support rates, and the labelled claims built from a golden question."""

from __future__ import annotations

import pytest

from evals.citation_pairs import Claim, claims_of, rates
from evals.sweep_constants import choose, collapsed


def test_choose_takes_the_best_score_and_keeps_a_tying_default() -> None:
    scores = {1: (0.9, 0.5), 5: (0.95, 0.7), 10: (0.95, 0.7), 60: (0.95, 0.6)}
    assert choose(list(scores), scores.__getitem__, default=1) == 5
    assert choose(list(scores), scores.__getitem__, default=10) == 10


def test_collapsed_counts_what_was_skipped_before_the_last_kept_chunk() -> None:
    order = ["a", "b", "c", "d", "e", "f"]
    assert collapsed(order, ["a", "c", "e"]) == ["b", "d"]  # "f" comes after the last kept
    assert collapsed(order, ["a", "b", "c"]) == []
    assert collapsed(order, []) == []


def test_rates_split_at_the_threshold() -> None:
    found = rates([0.5, 0.6, 0.7, 0.8], [0.4, 0.6], threshold=0.6)
    assert found == {"supported": 0.75, "rejected": 0.5, "balanced": 0.625}
    assert rates([], [0.1], 0.5)["balanced"] is None


SOURCES = [
    (1, "policy", "Prompts are kept for 30 days. Metadata is kept for 13 months."),
    (2, "faq", "The FAQ says prompts are kept for 90 days."),
    (3, "guide", "Keys are rotated every 13 months."),
]


def test_claims_pair_each_fact_sentence_with_stating_and_silent_sources() -> None:
    reference = "The policy keeps prompts for 30 days. It was approved in May."
    found = claims_of("q", reference, ["30 days"], ["policy"], SOURCES)
    assert [(c.kind, c.text) for c in found] == [
        ("reference", "The policy keeps prompts for 30 days."),
        ("document", "Prompts are kept for 30 days."),
    ]
    reference_claim, document_claim = found
    assert (reference_claim.positives, reference_claim.negatives) == ((1,), (2, 3))
    # the sentence was taken from source 1, which supports it trivially: not a positive
    assert (document_claim.positives, document_claim.negatives) == ((), (2, 3))


@pytest.mark.parametrize(
    ("expected", "positives", "negatives"),
    [
        (["policy"], (1,), (2,)),  # the guide states "13 months" too: neither
        (["guide"], (), (2,)),  # the expected source lacks a fact: no positive
    ],
)
def test_a_claim_needs_all_its_facts_for_a_positive_and_none_for_a_negative(
    expected: list[str], positives: tuple[int, ...], negatives: tuple[int, ...]
) -> None:
    reference = "Prompts stay 30 days and metadata 13 months."
    found = claims_of("q", reference, ["30 days", "13 months"], expected, SOURCES)
    first = found[0]
    assert isinstance(first, Claim)
    assert (first.kind, first.facts) == ("reference", ("30 days", "13 months"))
    assert (first.positives, first.negatives) == (positives, negatives)
