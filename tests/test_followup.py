"""Follow-up questions: which questions go on from the conversation, what they carry along,
and which model rewrites are kept (assistant/followup.py), with spaCy's real tagger."""

from __future__ import annotations

import pytest

from assistant import followup
from assistant.prompt import REWRITE_ANSWER_WORDS, Turn, build_rewrite_messages
from assistant.shapes import Shape, asks_about_projects, question_shape

DEPLOY = "How do we deploy document processing?"


@pytest.mark.parametrize(
    "question",
    [
        "What approvals does that need before go-live?",  # a demonstrative
        "who owns it?",
        "what did they learn",
        "How long does this step take?",
        "is the same true for marketing?",
        "What happens there after go-live?",  # "there" as a place
        "and what do we check after go-live?",  # continues
        "what about Tier 3 systems",
        "and the cost?",  # four words or fewer
    ],
)
def test_follow_ups_are_told_by_their_words(question: str) -> None:
    assert followup.is_follow_up(question)


@pytest.mark.parametrize(
    "question",
    [
        "What is the data retention period for chat logs?",
        "Is there a template for business cases?",  # an existential "there"
        "What is the form that we sign before a pilot?",  # a relative "that"
        "Has anyone tried OCR on expense receipts?",
        "Which vendor did we pick for the LLM platform and why?",
    ],
)
def test_complete_questions_are_not_follow_ups(question: str) -> None:
    assert not followup.is_follow_up(question)


def test_a_complete_question_is_taken_as_typed_without_asking_the_model() -> None:
    def rewrite() -> str:
        raise AssertionError("the model was asked")

    question = "What is the data retention period for chat logs?"
    assert followup.standalone(question, [DEPLOY], rewrite) == question
    assert followup.standalone("who owns it?", [], rewrite) == "who owns it?"  # no history


def test_a_follow_up_of_a_follow_up_carries_both_questions_it_goes_on_from() -> None:
    previous = [DEPLOY, "What approvals does that need before go-live?"]
    assert followup.standalone("and what do we check after go-live?", previous, lambda: None) == (
        "and what do we check after go-live (following: What approvals does that need before "
        "go-live; How do we deploy document processing)?"
    )
    # the model's rewrite that answered the previous question again is not kept
    lost = followup.standalone(
        "and what do we check after go-live?",
        previous,
        lambda: "What approvals are needed before go-live?",
    )
    assert lost.startswith("and what do we check after go-live (following:")
    # a complete previous question is the only one carried
    assert followup.went_on_from(["What is KAIG?", DEPLOY]) == DEPLOY.rstrip("?")


def test_a_rewrite_is_kept_only_with_the_follow_ups_words_and_a_word_of_the_topic() -> None:
    question = "What approvals does that need before go-live?"
    good = "What approvals does document processing need before go-live?"
    assert followup.standalone(question, [DEPLOY], lambda: good) == good
    assert followup.keeps_question("which approval is needed?", "Which approvals are needed?")
    assert not followup.keeps_question("who approves the budget?", "Who approves it?")
    assert not followup.carries_topic(DEPLOY, question, "What approvals are needed?")


def test_the_rewrite_reads_the_opening_of_earlier_answers_only() -> None:
    steps = " ".join(f"Step {n}: do the thing number {n} with care [1]." for n in range(1, 40))
    history = [Turn("user", DEPLOY), Turn("assistant", steps)]
    user = build_rewrite_messages(history, "who approves it?")[-1]["content"]
    assert DEPLOY in user
    answer_line = next(line for line in user.splitlines() if line.startswith("assistant:"))
    assert len(answer_line.split()) == 1 + REWRITE_ANSWER_WORDS + 1  # "assistant:", words, "..."
    assert "Step 39" not in user


def test_the_answer_shape_comes_from_the_follow_ups_own_words() -> None:
    carried = followup.following("why was it stopped?", "did HR ever pilot AI for shortlisting?")
    assert followup.own_words(carried) == "why was it stopped?"
    assert not asks_about_projects(carried)
    after_steps = followup.following("what happens if we go over its rate limit", DEPLOY)
    assert question_shape(after_steps, ["playbook"]) is Shape.FACT  # not the steps again
    assert followup.own_words("What changed (Following: v1 vs v2)?") == "What changed?"
