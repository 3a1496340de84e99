"""Thumbs down from the query log as candidate evaluation cases (`kb eval triage`).

Each distinct question (case, spacing and closing punctuation aside: the query log's
`normalise_question`) marked down becomes one line in the golden format (evals/datasets/
README.md) with what the log knows about it under `triage`: how many answers to it were marked
down, when, why (the reason and the comment), what those answers cited and whether they refused.
The log stores no answer text, so there is none to show.

What only an analyst can say is left empty and named in `to_complete` (`type`,
`expected_docs`, `key_facts`, `reference_answer`), and `needs_review` is true. The dataset
loader refuses both keys (they are not fields of the format), so a candidate cannot be run
before it is reviewed: adopting it means filling those fields and deleting `needs_review`,
`to_complete` and `triage` (evals/README.md, "Evaluation suites").

The triage file is appended to, never rewritten: a second triage adds only the questions not
in it yet, so an analyst's edits to earlier lines stay.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.querylog import ThumbsDown, normalise_question
from evals.suite_data import _json_lines

TO_COMPLETE = ("type", "expected_docs", "key_facts", "reference_answer")


@dataclass(frozen=True)
class TriageResult:
    thumbs_down: int  # thumbs down read from the log
    questions: int  # distinct questions among them
    added: list[dict[str, Any]]  # candidates appended to the file
    known: int  # questions already in the file, left as they are


def candidate_id(question: str) -> str:
    """The same id for the same question however it was typed."""
    return "triage-" + hashlib.sha256(normalise_question(question).encode()).hexdigest()[:10]


def candidates(votes: Sequence[ThumbsDown]) -> list[dict[str, Any]]:
    """One candidate per distinct question, in the order each was first marked down."""
    grouped: dict[str, list[ThumbsDown]] = {}
    for vote in votes:
        grouped.setdefault(normalise_question(vote.standalone), []).append(vote)
    return [_candidate(group) for group in grouped.values()]


def _candidate(votes: list[ThumbsDown]) -> dict[str, Any]:
    first, latest = votes[0], votes[-1]
    groups = sorted({g for v in votes for g in v.groups} - {"admin"})
    return {
        "id": candidate_id(first.standalone),
        "question": first.standalone,  # as first marked down; the others under "asked_as"
        "type": None,
        "expected_docs": [],
        "expected_sections": [],
        "key_facts": [],
        "reference_answer": "",
        "principal_groups": groups or ["all"],  # an administrator's question: anyone's
        "forbidden_docs": [],
        "must_warn_stale": any(v.reason == "outdated" for v in votes),
        "needs_review": True,
        "to_complete": list(TO_COMPLETE),
        "triage": {
            "count": len({v.answer_id for v in votes}),
            "first_at": first.at,
            "last_at": latest.at,
            "asked_as": sorted({v.question for v in votes}),  # as typed, before rewriting
            "reasons": sorted({v.reason for v in votes if v.reason}),
            "comments": [v.comment for v in votes if v.comment],
            "cited": sorted({d for v in votes for d in v.cited}),
            "refused": sum(v.refused for v in votes),
            "refusal_reasons": sorted({v.refusal_reason for v in votes if v.refusal_reason}),
            "generators": sorted({v.generator for v in votes}),
            "answer_ids": [v.answer_id for v in votes],
        },
    }


def known_questions(path: Path) -> set[str]:
    """The normalised questions a triage (or any golden-format) file already holds."""
    if not path.is_file():
        return set()
    return {normalise_question(str(row.get("question", ""))) for _, row in _json_lines(path)}


def triage(votes: Sequence[ThumbsDown], path: Path) -> TriageResult:
    """Append the candidates whose question is not in `path` yet; the rest are counted."""
    found = candidates(votes)
    known = known_questions(path)
    added = [c for c in found if normalise_question(c["question"]) not in known]
    if added:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            for c in added:
                out.write(json.dumps(c, ensure_ascii=False) + "\n")
    return TriageResult(len(votes), len(found), added, len(found) - len(added))
