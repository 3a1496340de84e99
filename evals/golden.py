"""The golden question set: its format, and loading it (evals/datasets/README.md)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from index.errors import InputError

GOLDEN_DIR = Path(__file__).parent / "datasets" / "golden"


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
    return questions
