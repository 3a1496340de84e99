"""The datasets of the evaluation suites (`kb eval`): one format, the golden set's
(evals/datasets/README.md), and loaders that read three kinds of file into it.

- golden format, JSONL: one question object per line (`evals/golden.py` `GoldenQuestion`); the
  look-alike set's lines (id, question, expected_docs) are in it too, the other keys taking
  their defaults;
- contoso_hr's format: a folder with `dev.jsonl` (`question`, `truth` ending in
  `[file.pdf#page=N]`) and `dev_dontknows.jsonl` (`question`; unanswerable);
- a CSV an analyst writes in a spreadsheet: columns `question`, `expected_document`,
  `key_facts` (separated by ';'), and optionally `id`, `type`, `groups` (';'),
  `reference_answer`, `forbidden_documents` (';'), `must_warn_stale` (yes/no).

A malformed file fails with its name, the line and the field, and what to do
(`x.csv line 7: field 'question' is empty`).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from evals.answers import PageRef, parse_reference, spread
from evals.benchkit import CONTOSO, REPO
from evals.golden import EMPLOYEE_DIR, FOLLOWUPS_DIR, GOLDEN_DIR, GoldenQuestion, QuestionType
from index.errors import InputError
from ingest.metadata import slugify

LOOKALIKE_DIR = REPO / "evals" / "datasets" / "lookalike"
CSV_COLUMNS = ("question", "expected_document", "key_facts")
CSV_OPTIONAL = ("id", "type", "groups", "reference_answer", "forbidden_documents")
CSV_FLAGS = ("must_warn_stale",)
# A CSV column's name where it differs from the field it fills.
_CSV_NAMES = {
    "expected_docs": "expected_document",
    "principal_groups": "groups",
    "forbidden_docs": "forbidden_documents",
}
_YES = {"yes", "y", "true", "1", "x"}
_NO = {"", "no", "n", "false", "0"}


class DatasetError(InputError):
    """A dataset file is malformed: names the file, the line and the field."""

    def __init__(self, path: Path, line: int | None, field: str | None, reason: str) -> None:
        self.path, self.line, self.field = path, line, field
        where = shown(path) + (f" line {line}" if line else "")
        what = f"field '{field}' {reason}" if field else reason
        super().__init__(f"{where}: {what}")


def shown(path: Path) -> str:
    """The path as a user typed it: relative to the working folder when under it."""
    try:
        return path.resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


class SuiteQuestion(GoldenQuestion):
    """A question of any dataset, in the golden format. Beside the golden keys: where it was
    read (`origin`), and for contoso_hr the reference page its citations are matched to."""

    reference_answer: str = ""
    principal_groups: list[str] = Field(default_factory=lambda: ["all"], min_length=1)
    type: QuestionType = QuestionType.SINGLE_FACT
    reference_page: PageRef | None = None
    origin: str = ""

    @model_validator(mode="before")
    @classmethod
    def _default_type(cls, data: Any) -> Any:
        """No type given: unanswerable when no document is expected, else single_fact."""
        if isinstance(data, dict) and not data.get("type"):
            data = {**data, "type": "single_fact" if data.get("expected_docs") else "unanswerable"}
        return data


def _inconsistency(q: SuiteQuestion) -> tuple[str, str] | None:
    """(field, reason) when the question contradicts itself; None when it does not."""
    if q.type is QuestionType.UNANSWERABLE and q.expected_docs:
        return "type", "is 'unanswerable' but a document is expected: drop one of them"
    if not q.expected_docs and q.key_facts:
        return "key_facts", "given but no document is expected: name the expected document"
    return None


# -- the known datasets -----------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A question set: where it is, its format, and the documents it asks about."""

    name: str
    path: Path
    fmt: str  # "golden", "contoso" or "csv"
    documents: Path | None = None  # the folder `kb eval run --ingest` takes for it

    def load(self) -> list[SuiteQuestion]:
        loader = {"golden": load_golden_format, "contoso": load_contoso, "csv": load_csv}
        questions = loader[self.fmt](self.path)
        repeated = sorted(q for q, n in Counter(q.id for q in questions).items() if n > 1)
        if repeated:
            raise DatasetError(self.path, None, "id", f"repeats {repeated}: ids must be unique")
        return questions


def known_datasets() -> list[Dataset]:
    """golden, employee, followups and lookalike (shipped); contoso when ../shared/bench has it."""
    found = [
        Dataset("golden", GOLDEN_DIR, "golden", REPO / "corpus"),
        Dataset("employee", EMPLOYEE_DIR, "golden", REPO / "corpus"),
        Dataset("followups", FOLLOWUPS_DIR, "golden", REPO / "corpus"),
        Dataset("lookalike", LOOKALIKE_DIR / "questions.jsonl", "golden", LOOKALIKE_DIR / "docs"),
    ]
    if (CONTOSO / "qa" / "dev.jsonl").is_file():
        found.append(Dataset("contoso", CONTOSO / "qa", "contoso", CONTOSO / "docs"))
    return found


def resolve(name_or_path: str) -> Dataset:
    """A known dataset by name, or a file or folder: `.csv`, golden-format `.jsonl` or a folder
    of them, or a contoso_hr-style folder (`dev.jsonl` with `truth`)."""
    for dataset in known_datasets():
        if dataset.name == name_or_path:
            return dataset
    path = Path(name_or_path)
    if not path.exists():
        names = ", ".join(d.name for d in known_datasets())
        raise DatasetError(
            path,
            None,
            None,
            f"no such dataset or file: use one of {names}, or the path of a .csv or .jsonl file",
        )
    if path.is_dir():
        fmt = "contoso" if (path / "dev.jsonl").is_file() else "golden"
        return Dataset(path.name, path, fmt)
    if path.suffix.lower() == ".csv":
        return Dataset(path.stem, path, "csv")
    if path.suffix.lower() == ".jsonl":
        return Dataset(path.stem, path, "golden")
    raise DatasetError(path, None, None, "unknown kind of file: use .csv or .jsonl")


def type_counts(questions: Iterable[SuiteQuestion]) -> dict[str, int]:
    counts = Counter(q.type.value for q in questions)
    return {t.value: counts[t.value] for t in QuestionType if counts[t.value]}


def select(questions: Sequence[SuiteQuestion], limit: int | None) -> list[SuiteQuestion]:
    """`limit` questions spread over the question types in proportion to their counts (every
    type present gets one when the limit allows), each type's evenly spread; dataset order."""
    if limit is None or limit >= len(questions):
        return list(questions)
    by_type: dict[str, list[SuiteQuestion]] = {}
    for q in questions:
        by_type.setdefault(q.type.value, []).append(q)
    quota = {t: 1 if limit >= len(by_type) else 0 for t in by_type}
    left = limit - sum(quota.values())
    shares = {t: left * len(qs) / len(questions) for t, qs in by_type.items()}
    for t in by_type:
        quota[t] += int(shares[t])
    order = sorted(by_type, key=lambda t: (-(shares[t] - int(shares[t])), t))
    for t in order[: limit - sum(quota.values())]:
        quota[t] += 1
    chosen = {q.id for t, qs in by_type.items() for q in spread(qs, min(quota[t], len(qs)))}
    return [q for q in questions if q.id in chosen]


# -- golden format (JSONL) ---------------------------------------------------------------------


def load_golden_format(path: Path) -> list[SuiteQuestion]:
    """Every line of a `.jsonl` file, or of every `*.jsonl` in a folder (file order)."""
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise DatasetError(path, None, None, "holds no .jsonl file")
    questions = []
    for file in files:
        for number, row in _json_lines(file):
            questions.append(_validated(row, file, number))
    return questions


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(path, number, None, f"is not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DatasetError(path, number, None, "is not a JSON object")
        yield number, row


def _validated(
    row: dict[str, Any], path: Path, line: int, names: dict[str, str] | None = None
) -> SuiteQuestion:
    """The row as a question, or a DatasetError naming the field (by its `names` in the file)."""
    try:
        question = SuiteQuestion.model_validate({**row, "origin": f"{shown(path)}:{line}"})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise DatasetError(path, line, (names or {}).get(field, field), _reason(first)) from None
    problem = _inconsistency(question)
    if problem is not None:
        field, reason = problem
        raise DatasetError(path, line, (names or {}).get(field, field), reason)
    return question


def _reason(error: Any) -> str:
    kind, given = error["type"], error.get("input")
    if kind == "missing":
        return "is missing"
    if kind == "string_too_short" and not str(given).strip():
        return "is empty"
    if kind == "enum":
        allowed = ", ".join(t.value for t in QuestionType)
        return f"is '{given}': use one of {allowed}"
    if kind == "extra_forbidden":
        return "is not a field of the format (evals/datasets/README.md lists them)"
    if kind == "too_long":
        return f"has {len(given)} items: at most 4 key facts a question"
    return str(error["msg"]).removeprefix("Value error, ")


# -- contoso_hr --------------------------------------------------------------------------------


def load_contoso(folder: Path) -> list[SuiteQuestion]:
    """dev.jsonl (answerable: the reference file's document is expected, its page matched by
    `citation_match`) and dev_dontknows.jsonl (unanswerable), asked as an ordinary employee
    (the benchmark's documents are readable by all). Ids `dev:N` and `dontknow:N`, as
    evals/bench_answers.py names them."""
    questions = []
    for number, row in _json_lines(folder / "dev.jsonl"):
        try:
            ref = parse_reference(str(row.get("truth", "")))
        except ValueError as exc:
            raise DatasetError(folder / "dev.jsonl", number, "truth", str(exc)) from None
        fields = {
            "id": f"dev:{number}",
            "question": row.get("question", ""),
            "expected_docs": [slugify(ref.file.split(".")[0])],
            "reference_answer": row["truth"],
            "reference_page": ref,
        }
        questions.append(_validated(fields, folder / "dev.jsonl", number))
    dontknows = folder / "dev_dontknows.jsonl"
    if dontknows.is_file():
        for number, row in _json_lines(dontknows):
            fields = {"id": f"dontknow:{number}", "question": row.get("question", "")}
            questions.append(_validated({**fields, "expected_docs": []}, dontknows, number))
    return questions


# -- CSV ---------------------------------------------------------------------------------------


def load_csv(path: Path) -> list[SuiteQuestion]:
    """One question a row; header row required (line 1)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise DatasetError(
                path,
                1,
                missing[0],
                f"is not a column (the header has {', '.join(header)}): "
                f"the columns are {', '.join(CSV_COLUMNS)}, optionally "
                f"{', '.join(CSV_OPTIONAL + CSV_FLAGS)}",
            )
        reader.fieldnames = header
        questions = []
        for row in reader:
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue  # a blank row a spreadsheet left
            questions.append(_csv_question(row, path, reader.line_num))
    return questions


def _csv_question(row: dict[str, Any], path: Path, line: int) -> SuiteQuestion:
    cell = {
        k: (v or "").strip() for k, v in row.items() if isinstance(k, str) and isinstance(v, str)
    }
    flag = cell.get("must_warn_stale", "").lower()
    if flag not in _YES | _NO:
        raise DatasetError(path, line, "must_warn_stale", f"is '{flag}': use yes or no")
    fields: dict[str, Any] = {
        "id": cell.get("id") or f"{path.stem}:{line}",
        "question": cell["question"],
        "expected_docs": _split(cell["expected_document"]),
        "key_facts": _split(cell["key_facts"]),
        "type": cell.get("type", ""),
        "reference_answer": cell.get("reference_answer", ""),
        "forbidden_docs": _split(cell.get("forbidden_documents", "")),
        "must_warn_stale": flag in _YES,
    }
    if cell.get("groups"):
        fields["principal_groups"] = _split(cell["groups"])
    return _validated(fields, path, line, _CSV_NAMES)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]
