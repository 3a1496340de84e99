"""The shape an answer takes, chosen from the question and its sources: numbered steps for a
procedure, a paired list for a comparison, one line per project for "has anyone tried X?",
one or two sentences for a fact. Every generator answers in the shape: the prompted ones are
told it (`instruction`), the extractive composer builds it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum

from assistant.followup import own_words
from assistant.question import canonical
from assistant.sources import Source

PROJECT_TYPES = frozenset({"lessons_learned", "showcase", "vendor_evaluation"})


class Shape(StrEnum):
    PROCEDURE = "procedure"
    COMPARISON = "comparison"
    PROJECTS = "projects"
    FACT = "fact"


_PROJECTS = re.compile(
    r"\b(?:has|have|did|do)\s+(?:any(?:one|body)|some(?:one|body)|any\s+(?:team|department|"
    r"of us|one here)|we|marketing|finance|sales|hr|legal|it|customer service)\b.*\b(?:tried|"
    r"try|built|build|done|used|use|using|automated|evaluated|compared|rolled|deployed|run|"
    r"piloted|looked|ever)\b|\b(?:prior|previous|earlier|past)\s+(?:projects?|pilots?|work)\b|"
    r"\bbefore us\b|\balready\b.*\b(?:tried|built|done|evaluated|compared)\b|"
    r"\bwhat (?:did|have) (?:we|they|other)\b.*\blearn",
    re.I,
)
# "Different" compares only when things are said to differ ("how is A different from B",
# "I've seen different numbers"), not as an adjective ("move to a different model family")
# nor in "how much can a price differ from the PO price?".
_COMPARISON = re.compile(
    r"\b(?:compare[sd]?|comparison|versus|vs\.?|differences?|disagree|conflict|contradict|"
    r"what changed|changes? (?:from|between|since|in)|better than|"
    r"which (?:one|is (?:right|correct|better))|i'?ve seen both|both|each|"
    r"different (?:numbers|answers|figures|values|amounts|dates|versions|rules)|"
    r"how (?:do|does|is|are)\b.*\bdiffer(?:s|ent)?)\b",
    re.I,
)
# A procedure is asked at the start of a sentence of the question ("We want to move our
# system. What do we need to do first?"), or anywhere by its words ("what's the process").
_PROCEDURE = re.compile(
    r"(?:^|[.?!]\s+)(?:how (?:do|can|should|would|to|does)\b|what are the steps|"
    r"walk me through|what (?:do|should) (?:i|we) (?:actually |really |still )?"
    r"(?:need to |have to )?do\b)|"
    r"\b(?:steps?|process|procedure|checklist|how to|set (?:it |that )?up|roll (?:it )?out|"
    r"onboard|get (?:it|my|our|a) .* (?:approved|going|started|set up))\b",
    re.I,
)


def shape_of(question: str, sources: Sequence[Source]) -> Shape:
    """Projects when the question asks what was tried and a source is a project document;
    then a comparison, a procedure, else a fact."""
    return question_shape(question, [h.doc_type for s in sources for h in s.hits])


def asks_about_projects(question: str) -> bool:
    """Whether the question asks what was tried before ("has anyone tried X?"), whatever
    the sources."""
    return bool(_PROJECTS.search(canonical(own_words(question))))


def asks_to_compare(question: str) -> bool:
    """Whether the question compares things or asks what changed."""
    return bool(_COMPARISON.search(canonical(own_words(question))))


def question_shape(question: str, doc_types: Sequence[str]) -> Shape:
    """shape_of() for the document types of the sources; "  HOW do we ...?!" is "How do we
    ...?"."""
    question = canonical(own_words(question))
    if asks_about_projects(question) and PROJECT_TYPES.intersection(doc_types):
        return Shape.PROJECTS
    if asks_to_compare(question):
        return Shape.COMPARISON
    if _PROCEDURE.search(question):
        return Shape.PROCEDURE
    return Shape.FACT


INSTRUCTIONS = {
    Shape.PROCEDURE: "Answer with the numbered steps in the order the source gives them, one "
    "line each, keeping every number, threshold, form and tool name, each line ending with "
    "its source number.",
    Shape.COMPARISON: "Answer with one line per thing compared or per source, saying what each "
    "states, each line ending with its source number. If the sources disagree, say so and "
    "name both.",
    Shape.PROJECTS: "Answer with one line per project, written like: Project name "
    "(department, vendor, outcome, year): what it learned. [n]",
    Shape.FACT: "Answer in one or two sentences.",
}


# "A versus B", "A vs. B", "A compared with B"; the things compared follow the last "of" or
# "for" of a question's lead ("what was the first-year cost of A versus B").
_VERSUS = re.compile(r"^(.+?)\s+(?:versus|vs\.?|compared (?:to|with)|against)\s+(.+?)$", re.I)
_LEAD = re.compile(r"^(?:what|how|which|who|when|where)\b.*\b(?:of|for)\s+", re.I)
_ARTICLE = re.compile(r"^(?:the|a|an)\s+", re.I)


def compared(question: str) -> list[str]:
    """The two things an "A versus B" question compares, or none for other wordings (which
    are not parsed: "how do A and B compare" says too little about where A starts)."""
    text = canonical(own_words(question)).rstrip("?").strip()
    text = text.rsplit(":", 1)[-1].strip()
    versus = _VERSUS.match(text)
    if not versus:
        return []
    first, second = _LEAD.sub("", versus.group(1)), versus.group(2)
    items = [_ARTICLE.sub("", item.strip(" ,.")) for item in (first, second)]
    return items if all(2 <= len(item) <= 80 for item in items) else []


def instruction(shape: Shape, question: str = "") -> str:
    """What the prompt asks for; a comparison names the things compared, so that a small
    model gives each its line instead of describing the first source only."""
    items = compared(question) if shape is Shape.COMPARISON else []
    if items:
        return (
            "Answer with one line for each of: " + "; ".join(items) + ". Each line says what "
            "its source states about it and ends with that source number. If the sources "
            "disagree, say so and name both."
        )
    return INSTRUCTIONS[shape]
