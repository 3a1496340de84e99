"""The question sets over corpus/: their format, loading them, the golden set's calibration
and report parts, and checking a set against the documents (evals/datasets/README.md)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evals.answers import key_fact_recall
from index.errors import InputError

DATASETS_DIR = Path(__file__).parent / "datasets"
GOLDEN_DIR = DATASETS_DIR / "golden"
EMPLOYEE_DIR = DATASETS_DIR / "employee"
FOLLOWUPS_DIR = DATASETS_DIR / "followups"
# Question sets in the golden format, by the name `--dataset` takes.
DATASETS = {"golden": GOLDEN_DIR, "employee": EMPLOYEE_DIR, "followups": FOLLOWUPS_DIR}


class QuestionType(StrEnum):
    SINGLE_FACT = "single_fact"
    PROCEDURAL = "procedural"
    MULTI_DOC = "multi_doc"
    PRIOR_PROJECT = "prior_project"
    STALE = "stale"
    RESTRICTED = "restricted"
    SUPERSEDED = "superseded"
    UNANSWERABLE = "unanswerable"


class GoldenQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    question: str = Field(min_length=5)
    type: QuestionType
    expected_docs: list[str] = Field(description="Documents that answer it, best first.")
    expected_sections: list[str] = Field(default_factory=list)
    key_facts: list[str] = Field(default_factory=list, max_length=4)
    reference_answer: str
    principal_groups: list[str] = Field(min_length=1)
    forbidden_docs: list[str] = Field(
        default_factory=list, description="Documents that must not appear anywhere."
    )
    must_warn_stale: bool = False
    history: list[str] = Field(
        default_factory=list,
        description="Questions asked before it in the same conversation, oldest first: it is "
        "a follow-up, answered after each of them was answered.",
    )

    @property
    def answerable(self) -> bool:
        return bool(self.expected_docs)


def load_golden(folder: Path = GOLDEN_DIR) -> list[GoldenQuestion]:
    """Every question of every `*.jsonl` file in `folder`, in file then line order."""
    questions: list[GoldenQuestion] = []
    for path in sorted(folder.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                questions.append(GoldenQuestion.model_validate(json.loads(line)))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise InputError(f"{path.name} line {number}: {exc}") from exc
    repeated = sorted(qid for qid, n in Counter(q.id for q in questions).items() if n > 1)
    if repeated:
        raise InputError(f"{folder.name}: repeated ids {repeated}")
    return questions


def load_dataset(name: str) -> list[GoldenQuestion]:
    """The question set `name` (a key of DATASETS)."""
    if name not in DATASETS:
        raise InputError(f"unknown question set '{name}': use one of {', '.join(DATASETS)}")
    return load_golden(DATASETS[name])


# -- calibration and report parts (issue 16, item 14) -----------------------------------------


class Part(StrEnum):
    CALIBRATION = "calibration"  # thresholds are chosen on these questions
    REPORT = "report"  # and measured on these


def _stratum(q: GoldenQuestion) -> tuple[str, bool]:
    return (q.type.value, q.answerable)


def split_parts(questions: Iterable[GoldenQuestion]) -> dict[str, Part]:
    """Question id -> part. Within each stratum (type, and answerable or not: restricted
    questions come in both kinds), questions are ordered by the SHA-256 of their id and take
    turns, calibration first, so each stratum splits in halves (calibration gets the odd one)
    and the split depends on nothing but the ids. Adding a question can move others of its
    stratum to the other part: re-run the calibration after editing the set."""
    strata: dict[tuple[str, bool], list[str]] = {}
    for q in questions:
        strata.setdefault(_stratum(q), []).append(q.id)
    parts: dict[str, Part] = {}
    for ids in strata.values():
        ordered = sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
        for rank, qid in enumerate(ordered):
            parts[qid] = Part.CALIBRATION if rank % 2 == 0 else Part.REPORT
    return parts


def in_part(questions: Sequence[GoldenQuestion], part: Part) -> list[GoldenQuestion]:
    """The questions of one part, in their original order."""
    parts = split_parts(questions)
    return [q for q in questions if parts[q.id] is part]


# -- checking a set against the documents ------------------------------------------------------


def dataset_problems(
    questions: Iterable[GoldenQuestion],
    doc_texts: Mapping[str, str],
    stale_docs: Iterable[str] = (),
) -> list[str]:
    """What is wrong with a question set, given each document's text as parsed (doc id ->
    text): an expected or forbidden document that does not exist, a key fact that is not in
    the text of the expected documents (case- and whitespace-insensitive, as key facts are
    scored), a key fact on an unanswerable question, and a `must_warn_stale` whose first
    expected document is not stale (`stale_docs`). Empty when the set is consistent."""
    stale = set(stale_docs)
    problems = []
    for q in questions:
        for doc_id in [*q.expected_docs, *q.forbidden_docs]:
            if doc_id not in doc_texts:
                problems.append(f"{q.id}: no document '{doc_id}'")
        if not q.answerable:
            if q.key_facts:
                problems.append(f"{q.id}: unanswerable with key facts")
            continue
        text = "\n".join(doc_texts.get(d, "") for d in q.expected_docs)
        problems += [
            f"{q.id}: key fact '{fact}' not in {', '.join(q.expected_docs)}"
            for fact in q.key_facts
            if not key_fact_recall(text, [fact])
        ]
        if q.must_warn_stale and q.expected_docs[0] not in stale:
            problems.append(f"{q.id}: must_warn_stale but {q.expected_docs[0]} is not stale")
    return problems
