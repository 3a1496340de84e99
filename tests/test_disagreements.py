"""Sources of one answer that state different values for what it says (assistant/
disagreements.py), with the real embedding model."""

from __future__ import annotations

from dataclasses import replace

from assistant.disagreements import Disagreement, disagreements
from assistant.sources import Source
from index.embedding import SentenceTransformerEmbedder
from tests.test_citations import _hit

QUESTION = "How long is the AI Essentials e-learning I must complete before using KAIG?"
FAQ = "Before you use KAIG you must complete the 30-minute AI Essentials e-learning."
POLICY = "Every employee completes the AI Essentials e-learning (45 minutes) before KAIG access."
SAID = ["You must complete the 30-minute AI Essentials e-learning before you use KAIG."]


def _sources(policy: str = POLICY, **changes: object) -> list[Source]:
    faq = replace(_hit("finance-ai-faq", FAQ), title="Finance AI FAQ", owner="Ana")
    rules = replace(_hit("ai-use-policy", policy), title="AI Use Policy", owner="Ben", **changes)
    return [Source(1, (faq,)), Source(2, (rules,))]


def test_two_current_sources_stating_different_values_are_named_with_both(
    embedder: SentenceTransformerEmbedder,
) -> None:
    (found,) = disagreements(QUESTION, SAID, _sources(), embedder)
    assert (found.first, found.second) == (1, 2)
    assert (found.first_value, found.second_value) == ("30-minute", "45 minutes")
    assert found.note() == "Note: [1] and [2] disagree: 30-minute [1] against 45 minutes [2]."


def test_the_same_value_written_another_way_is_no_disagreement(
    embedder: SentenceTransformerEmbedder,
) -> None:
    same = POLICY.replace("45 minutes", "half an hour")
    assert disagreements(QUESTION, SAID, _sources(same), embedder) == []


def test_a_superseded_source_or_one_a_source_supersedes_is_a_change_not_a_disagreement(
    embedder: SentenceTransformerEmbedder,
) -> None:
    assert disagreements(QUESTION, SAID, _sources(status="superseded"), embedder) == []
    assert disagreements(QUESTION, SAID, _sources(supersedes=("finance-ai-faq",)), embedder) == []


def test_a_disagreement_about_something_the_answer_does_not_say_is_not_reported(
    embedder: SentenceTransformerEmbedder,
) -> None:
    said = ["KAIG is the company's gateway to approved language models."]
    assert disagreements(QUESTION, said, _sources(), embedder) == []
    off_topic = "How do I request a KAIG key for my project?"
    assert disagreements(off_topic, SAID, _sources(), embedder) == []


def test_an_answer_ends_with_the_note_and_warns_with_both_titles_and_owners(
    embedder: SentenceTransformerEmbedder,
) -> None:
    from assistant.citations import CheckedAnswer, CheckedSentence
    from assistant.service import Answer, Assistant, AssistantOptions

    sources = _sources()
    checked = CheckedAnswer([CheckedSentence(SAID[0], [1], 0.9, [1], {1: sources[0].best})], [], 0)
    assistant = Assistant.__new__(Assistant)
    assistant._embedder = embedder
    assistant.options = AssistantOptions()
    base = Answer(QUESTION, QUESTION, "", False, [], [])
    answer = assistant._compose(base, checked, sources, {}, QUESTION)
    assert answer.answer.splitlines()[-1] == (
        "Note: [1] and [2] disagree: 30-minute [1] against 45 minutes [2]."
    )
    assert answer.warnings == [
        '[1] "Finance AI FAQ" says 30-minute and [2] "AI Use Policy" says 45 minutes about '
        "this; ask their owners (Ana; Ben) which is right."
    ]
    assert [type(d) for d in answer.disagreements] == [Disagreement]
    assert [(c.n, c.support) for c in answer.citations] == [(1, 0.9), (2, 1.0)]  # named: cited
    assistant.options = AssistantOptions(disagreements=None)
    quiet = assistant._compose(
        Answer(QUESTION, QUESTION, "", False, [], []), checked, sources, {}, QUESTION
    )
    assert quiet.warnings == []
    assert "Note:" not in quiet.answer
