"""Whether a list reads as steps to take (assistant/actions.py), with the real tagger."""

from __future__ import annotations

import pytest

from assistant.actions import reads_as_actions


@pytest.mark.parametrize(
    "items",
    [
        ["Check the request.", "Design the flow.", "Write the answers.", "Approve."],
        ["Copy the template into FileVault.", "Fill in every section.", "Keep it short."],
        [  # the tagger reads some imperatives as nouns: a quarter is enough
            "Convert documents to text.",
            "Split into chunks of 400 to 600 tokens.",
            "Attach metadata to every chunk.",
            "Embed with the KAIG embedding model.",
        ],
    ],
)
def test_steps_read_as_actions(items: list[str]) -> None:
    assert reads_as_actions(items)


@pytest.mark.parametrize(
    "items",
    [
        ["AI Essentials (45 minutes, e-learning).", "Prompting for Professionals (half-day)."],
        ["Four weeks before launch: book the CAB.", "Two weeks before launch: sign-offs."],
        ["Languages: English / Polish / Spanish.", "What customers are asking."],
        ["No automated decisions.", "No surveillance of employees."],
        ["Answer correctness: key facts present.", "Groundedness: statements supported."],
        [],
    ],
)
def test_courses_timelines_fields_and_rules_are_not_steps(items: list[str]) -> None:
    assert not reads_as_actions(items)
