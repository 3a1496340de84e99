"""However a question is typed, retrieval and the generator read the same text."""

from __future__ import annotations

import pytest

from assistant.question import canonical, phrased

SOURCES = [
    "Playbook: deploying document processing (version 2)",
    "Configure DocuSift Classify to assign a document type. How we deploy it matters. "
    "how the pilot runs. We use KAIG for every call.",
]


@pytest.mark.parametrize(
    "typed",
    [
        "How do we deploy document processing?",
        "how do we deploy document processing",
        "HOW DO WE DEPLOY DOCUMENT PROCESSING ?",
        "  How   do we deploy\tdocument processing??  ",
        "how do we deploy document processing.",
    ],
)
def test_spellings_of_one_question_read_the_same(typed: str) -> None:
    assert canonical(typed).lower() == "how do we deploy document processing?"
    assert phrased(typed, SOURCES) == "How do we deploy document processing?"


def test_names_take_the_sources_spelling() -> None:
    assert phrased("what does docusift do with kaig", SOURCES) == (
        "What does DocuSift do with KAIG?"
    )
    assert phrased("WHAT DOES DOCUSIFT DO WITH KAIG", SOURCES) == (
        "What does DocuSift do with KAIG?"
    )


def test_words_the_sources_lack_are_lower_case() -> None:
    assert phrased("Is ZORBLAX allowed?", SOURCES) == "Is zorblax allowed?"
    assert phrased("can i use it", SOURCES) == "Can I use it?"
