"""A question asked inside a conversation, made to stand alone for retrieval and generation.

A question that reads complete is taken as it is: nothing of the earlier topic is dragged in.
Only a follow-up goes on from the conversation: one that refers back ("what approvals does that
need?": a pronoun or a demonstrative, as tagged by spaCy), one that continues ("and what do we
check after go-live?"), one of four words or fewer ("and the cost?") or one that names one
subject word or none ("is there a weekly cap?"). A follow-up is carried with the question it
goes on from ("... (following: How do we deploy document processing)?"), and the assistant
also searches its own words among the documents of that question (assistant/service.py).

When the generator is asked to rewrite it first (`AssistantOptions.rewrite_follow_ups`), the
rewrite is kept only when it keeps every subject word of the follow-up and a word of the topic
it goes on from. Both checks come from the shipped 1.5B model's rewrites: "and what do we check
after go-live?", asked after "What approvals does that need before go-live?", came back as
"What approvals are needed before go-live?" (the follow-up itself lost), and "and what do we
check by hand after go-live?" after "How do we deploy document processing?" as "What do we
check by hand after go-live?" (the topic lost: another document's go-live was found).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from assistant import tagging

# Without the tagger: any of these words counts as referring back.
_REFERS_BACK = re.compile(r"\b(it|its|that|this|those|these|they|them|there|he|she|one)\b", re.I)
_PRONOUNS = frozenset(
    [
        "it",
        "its",
        "itself",
        "they",
        "them",
        "their",
        "theirs",
        "themselves",
        "he",
        "him",
        "his",
        "she",
        "her",
        "hers",
    ]
)
_DEMONSTRATIVES = frozenset(["this", "that", "these", "those"])
_BACK_WORDS = frozenset(["same", "former", "latter"])
# A question that goes on from the previous one ("and what do we check after go-live?").
_CONTINUES = re.compile(r"^\s*(?:and|also|then|plus|but|what about|how about)\b", re.I)
SHORT_WORDS = 4  # a question of this many words or fewer reads as a follow-up
_TOPIC_WORD = re.compile(r"[^\W\d_][\w-]{3,}|[A-Z]{2,}[\w-]*|\w*\d\w*")  # 4+ letters, codes
_NOT_TOPIC = frozenset(
    [
        "what",
        "which",
        "when",
        "where",
        "whom",
        "whose",
        "does",
        "have",
        "with",
        "about",
        "that",
        "this",
        "there",
        "they",
        "them",
        "from",
        "should",
        "would",
        "could",
        "will",
        "into",
        "than",
        "then",
        "also",
        "some",
        "your",
        "their",
        "these",
        "those",
        "other",
        "need",
        "needs",
        "tell",
        "know",
        "like",
        "more",
        "most",
        "much",
        "many",
        "same",
        "former",
        "latter",
    ]
)
_STEM = 5  # words agree on their first five letters ("approval" / "approvals")


def refers_back(question: str) -> bool:
    """Whether the question points at something said before: a personal pronoun ("it",
    "they"), a demonstrative ("does that need", "this step") or "there" as a place, but not a
    relative "that" ("the form that we sign") nor an existential "there" ("is there a
    template?")."""
    tagged = tagging.tags([question])
    if tagged is None:
        return bool(_REFERS_BACK.search(question))
    for word, tag in tagged[0]:
        lower = word.lower()
        if lower in _PRONOUNS and tag in {"PRP", "PRP$"}:
            return True
        if lower in _DEMONSTRATIVES and tag == "DT":
            return True
        if lower == "there" and tag == "RB":
            return True
        if lower in _BACK_WORDS:
            return True
    return False


def is_follow_up(question: str) -> bool:
    """Whether the question needs the conversation to be understood: it continues, is
    short, names one subject word or none ("is there a weekly cap?") or refers back."""
    return (
        bool(_CONTINUES.match(question))
        or len(question.split()) <= SHORT_WORDS
        or len(_words(question)) <= 1
        or refers_back(question)
    )


def _bare(question: str) -> str:
    return question.strip().rstrip(" ?!.")


def went_on_from(previous: Sequence[str]) -> str:
    """What the next follow-up goes on from: the last question and, while that one was a
    follow-up too, the one before it (two at most, latest first)."""
    chain = [_bare(previous[-1])]
    if len(previous) > 1 and is_follow_up(previous[-1]):
        chain.append(_bare(previous[-2]))
    return "; ".join(chain)


def following(question: str, previous: str) -> str:
    """The follow-up, then what it goes on from."""
    return f"{_bare(question)} (following: {_bare(previous)})?"


_CARRIED = re.compile(r"\s*\(following: .*\)\?$", re.S | re.I)


def own_words(question: str) -> str:
    """A question without what `following` carried along: what chooses the answer's shape
    and a comparison's parts. Carried along, "how do we deploy document processing?" made
    "and what do we check after go-live?" a procedure, answered with the previous answer's
    steps again, and "did HR ever pilot AI for shortlisting?" made "why was it stopped?" a
    list of projects."""
    return _CARRIED.sub("?", question)


def _words(text: str) -> set[str]:
    return {w.lower()[:_STEM] for w in _TOPIC_WORD.findall(text)} - {w[:_STEM] for w in _NOT_TOPIC}


def keeps_question(question: str, rewritten: str) -> bool:
    """Whether the rewrite keeps every subject word of the follow-up (on its first five
    letters, so "approvals" matches "approval")."""
    return _words(question) <= _words(rewritten)


def carries_topic(previous: str, question: str, rewritten: str) -> bool:
    """Whether the rewrite keeps a word of the previous question's topic that the follow-up
    itself lacks (true when the previous question has no such word)."""
    topic = _words(previous) - _words(question)
    return not topic or bool(topic & _words(rewritten))


def standalone(
    question: str,
    previous: Sequence[str],
    rewrite: Callable[[], str | None],
) -> str:
    """The question to retrieve and answer for, given the user's earlier questions (oldest
    first) and `rewrite`, which asks the generator for a standalone version (None when it
    cannot)."""
    if not previous or not is_follow_up(question):
        return question
    return carried(question, previous, rewrite)


def carried(question: str, previous: Sequence[str], rewrite: Callable[[], str | None]) -> str:
    """A follow-up made to stand alone: the rewrite when it passes both checks, else the
    follow-up carried with what it goes on from."""
    before = went_on_from(previous)
    rewritten = rewrite()
    if (
        rewritten
        and keeps_question(question, rewritten)
        and carries_topic(before, question, rewritten)
    ):
        return rewritten
    return following(question, before)
