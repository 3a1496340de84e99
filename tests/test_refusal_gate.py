"""The local model's refusal gate and the threshold choice of evals/calibrate_refusal.py, on
fixed logits (no model; the real model is in tests/test_assistant_e2e.py)."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.generators import RefusalGate, opening_probability
from evals.calibrate_refusal import highest_keeping, lowest_keeping

REFUSE = 2  # the refusal's opening token in these made-up vocabularies


def logits(*probabilities: float) -> np.ndarray:
    return np.log(np.array(probabilities, dtype=np.float32))


def test_opening_probability_is_the_softmax_of_the_token() -> None:
    assert opening_probability(logits(0.5, 0.3, 0.2), REFUSE) == pytest.approx(0.2, abs=1e-6)
    huge = np.array([1000.0, 999.0, 1001.0], dtype=np.float32)  # no overflow
    assert opening_probability(huge, REFUSE) == pytest.approx(0.665, abs=1e-3)


def test_a_likely_enough_refusal_is_forced_at_the_first_token() -> None:
    gate = RefusalGate(REFUSE, at=0.15)
    first = gate(np.array([1]), logits(0.5, 0.3, 0.2))
    assert int(np.argmax(first)) == REFUSE
    assert np.isneginf(first[[0, 1]]).all()
    assert gate.probability == pytest.approx(0.2, abs=1e-6)
    later = logits(0.9, 0.05, 0.05)
    assert gate(np.array([1, 2]), later) is later  # only the opening is weighed


def test_an_unlikely_refusal_leaves_the_answer_alone() -> None:
    gate = RefusalGate(REFUSE, at=0.25)
    scores = logits(0.5, 0.3, 0.2)
    assert gate(np.array([1]), scores) is scores
    assert gate.probability == pytest.approx(0.2, abs=1e-6)


def test_a_gate_at_zero_only_measures() -> None:
    gate = RefusalGate(REFUSE, at=0.0)
    scores = logits(0.98, 0.01, 0.01)
    assert gate(np.array([1]), scores) is scores
    assert gate.probability == pytest.approx(0.01, abs=1e-6)


def test_the_thresholds_keep_the_share_of_answerable_questions_asked_for() -> None:
    grid = (0.02, 0.05, 0.1, 0.2)
    answerable = np.array([0.001, 0.01, 0.03, 0.04, 0.06, 0.15])
    # lowest p with (p_answerable < threshold) for >= keep of them
    assert lowest_keeping(answerable, grid, keep=5 / 6) == 0.1
    assert lowest_keeping(answerable, grid, keep=1.0) == 0.2
    assert lowest_keeping(np.array([0.9]), grid, keep=1.0) == 1.0  # none keeps them: off
    gates = (0.3, 0.4, 0.5)
    tops = np.array([0.45, 0.55, 0.6, 0.7])
    assert highest_keeping(tops, gates, keep=1.0) == 0.4
    assert highest_keeping(tops, gates, keep=0.75) == 0.5
