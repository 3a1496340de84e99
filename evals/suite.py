"""The runner of the evaluation suites (`kb eval run`): every question of a dataset through the
assistant as the product assembles it (or through another system under test: evals/systems.py),
one record per question in a run folder.

A run folder holds `records.jsonl` (one line per question, appended and flushed as each is
answered, so Ctrl-C keeps what is done) and `summary.json` (the configuration, the corpus
fingerprint, the code version, the day staleness is judged on, and the metrics overall, per
question type and per department of the expected document; evals/suite_metrics.py). Running
again into the same folder skips the questions already recorded, provided the dataset, the
system and generator, the settings and the corpus are the same: otherwise it refuses, naming what
changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api.settings import Settings
from assistant.service import Assistant
from evals.bench_retrieval import GOLDEN_TODAY
from evals.benchkit import REPO
from evals.golden import DATASETS as GOLDEN_FORMAT_SETS
from evals.suite_data import Dataset, SuiteQuestion, type_counts
from evals.suite_metrics import all_metrics
from evals.systems import SystemUnderTest, as_system, record_of
from index.errors import ConflictError, InputError, InvalidRequestError
from index.filelock import FileLock
from index.records import DocumentRecord

RECORDS = "records.jsonl"
SUMMARY = "summary.json"
WRITING = ".writing.lock"  # held while a process answers into the folder (index/filelock.py)
# The day the golden and employee sets' stale labels hold on (evals/datasets/README.md); a run
# without KB_TODAY judges staleness on it, so the labels mean what they say.
DATASET_TODAY = {name: dt.date.fromisoformat(GOLDEN_TODAY) for name in GOLDEN_FORMAT_SETS}
# Settings that change how the service runs, not what an answer says: left out of a run's
# configuration, so changing them neither blocks a resume nor shows in a comparison.
SERVICE_ONLY = frozenset(
    {
        "log_level",
        "auth",
        "rate_limit_per_minute",
        "rate_limit_burst",
        "max_request_bytes",
        "upload_max_bytes",
        "host",
        "port",
        "serve_threads",
        "openai_api_key",
        "chroma_auth_token",
        "chroma_auth_header",
        "chroma_ssl",
        "openai_timeout_s",
        "openai_retries",
        "embed_batch_size",
        "embed_cache_entries",
        "corpus_dir",
        "data_dir",
    }
)


# -- the configuration of a run ---------------------------------------------------------------


def with_overrides(settings: Settings, pairs: Sequence[str]) -> tuple[Settings, dict[str, str]]:
    """The settings with each `KEY=VALUE` applied (a field name such as `answer_sources`, or
    its variable `KB_ANSWER_SOURCES`), validated as the variable would be."""
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        name = key.strip().lower().removeprefix("kb_")
        if not sep or not name:
            raise InvalidRequestError("--set", f"'{pair}' is not KEY=VALUE")
        if name not in Settings.model_fields:
            raise InvalidRequestError(
                "--set",
                f"unknown setting '{key.strip()}': use a field of the settings table "
                "in README.md, e.g. answer_sources=8 (KB_ANSWER_SOURCES)",
            )
        overrides[name] = value.strip()
    if not overrides:
        return settings, overrides
    try:
        changed = Settings.model_validate({**settings.model_dump(), **overrides})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidRequestError("--set", problems) from None
    return changed, overrides


def configuration(settings: Settings) -> dict[str, Any]:
    """The settings that decide answers, as JSON values."""
    dumped = settings.model_dump(mode="json")
    return {k: v for k, v in sorted(dumped.items()) if k not in SERVICE_ONLY}


def run_today(settings: Settings, dataset: Dataset) -> tuple[Settings, str]:
    """KB_TODAY when set, else the day the dataset's labels hold on, else the clock's day;
    and which of the three it was."""
    if settings.today is not None:
        return settings, "KB_TODAY"
    if dataset.name in DATASET_TODAY:
        return settings.model_copy(update={"today": DATASET_TODAY[dataset.name]}), "dataset"
    return settings, "clock"


def corpus(records: Sequence[DocumentRecord]) -> dict[str, Any]:
    """How many documents the store holds, and a fingerprint of which versions: the SHA-256
    of the sorted `doc_id content_hash` lines of the registry."""
    lines = sorted(f"{r.doc_id} {r.content_hash}" for r in records)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return {"documents": len(lines), "fingerprint": digest[:16]}


def code_version() -> dict[str, Any]:
    """`git rev-parse HEAD` of the repository, and whether tracked files differ from it."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    changes = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "modified": bool(changes) if changes is not None else None}


# -- the run folder ---------------------------------------------------------------------------


def read_records(folder: Path) -> list[dict[str, Any]]:
    """The records of a run folder. A last line cut short by an interrupted write is dropped
    (and the file rewritten without it); any other bad line is an error."""
    path = folder / RECORDS
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise InputError(f"{path} line {number}: not a JSON record") from None
            path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return records


def read_summary(folder: Path) -> dict[str, Any]:
    path = folder / SUMMARY
    if not path.is_file():
        raise InputError(f"{folder}: no {SUMMARY}: not a run folder of `kb eval run`")
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if loaded.get("status") == "running" and not run_lock(folder).held():
        loaded["status"] = "interrupted"  # its process ended without a last summary
    return loaded


def run_lock(folder: Path) -> FileLock:
    """The lock a run holds on its folder while it answers: two processes never append to one
    run, and a summary saying "running" whose lock nobody holds was left by a process that
    ended without writing its last summary."""
    return FileLock(folder / WRITING)


def write_summary(folder: Path, summary: dict[str, Any]) -> None:
    temporary = folder / (SUMMARY + ".tmp")
    temporary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    temporary.replace(folder / SUMMARY)


IDENTITY = ("dataset", "generator", "configuration", "corpus")


def check_resumable(folder: Path, header: dict[str, Any]) -> None:
    """A folder with records may be resumed only by the same dataset, generator, settings and
    corpus; the error names what differs."""
    if not (folder / RECORDS).is_file():
        return
    before = read_summary(folder)
    changed = []
    for key in IDENTITY:
        old, new = before.get(key), header[key]
        if key == "dataset":
            old, new = (old or {}).get("path"), new["path"]
        if isinstance(old, dict) and isinstance(new, dict):
            changed += [
                f"{key}.{k}" for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)
            ]
        elif old != new:
            changed.append(key)
    if changed:
        raise InputError(
            f"{folder} holds a run with another {', '.join(changed)}: resume it with the same "
            "inputs, or give another --out"
        )


# -- running ----------------------------------------------------------------------------------


@dataclass
class Progress:
    """What the runner reports after each question: done of total, the record, and the
    expected seconds left (the mean time of this session's answers times those left)."""

    done: int
    total: int
    record: dict[str, Any]
    eta_seconds: float


@dataclass
class Suite:
    """One run: the questions, the system answering them (our assistant, or another system
    under test: evals/systems.py), and the run folder."""

    questions: list[SuiteQuestion]
    answerer: Assistant | SystemUnderTest
    documents: list[DocumentRecord]
    folder: Path
    header: dict[str, Any]  # dataset, generator, configuration, corpus, code, today, ...
    progress: Callable[[Progress], None] = lambda p: None
    asked: list[str] = field(default_factory=list)  # ids asked in this session
    # set by another thread (the service shutting down) to end the run after the current
    # question, as an interrupted run that the same request resumes
    stop: threading.Event = field(default_factory=threading.Event)
    system: SystemUnderTest = field(init=False)

    def __post_init__(self) -> None:
        self.system = as_system(self.answerer)

    def run(self) -> dict[str, Any]:
        """Answer the questions not yet recorded, then write the summary; on Ctrl-C write the
        summary of what is done (status "interrupted") and re-raise; when `stop` is set, write
        it after the current question and return it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        writing = run_lock(self.folder)
        if not writing.try_acquire():
            raise ConflictError(
                f"{self.folder} is being written by another evaluation run: wait for it to end, "
                "or give this run its own --out folder"
            )
        try:
            return self._run()
        finally:
            writing.release()

    def _run(self) -> dict[str, Any]:
        check_resumable(self.folder, self.header)
        done = {r["id"]: r for r in read_records(self.folder)}
        todo = [q for q in self.questions if q.id not in done]
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        write_summary(self.folder, self.summary(done, "running", started))
        departments = {d.doc_id: d.meta.department for d in self.documents}
        clock = time.perf_counter()
        try:
            with (self.folder / RECORDS).open("a", encoding="utf-8") as out:
                for i, q in enumerate(todo, start=1):
                    if self.stop.is_set():
                        summary = self.summary(done, "interrupted", started)
                        write_summary(self.folder, summary)
                        return summary
                    record = self.ask(q, departments)
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    out.flush()
                    done[q.id] = record
                    eta = (time.perf_counter() - clock) / i * (len(todo) - i)
                    self.progress(
                        Progress(
                            len(self.questions) - len(todo) + i, len(self.questions), record, eta
                        )
                    )
        except KeyboardInterrupt:
            write_summary(self.folder, self.summary(done, "interrupted", started))
            raise
        summary = self.summary(done, "complete", started)
        write_summary(self.folder, summary)
        return summary

    def ask(self, q: SuiteQuestion, departments: dict[str, str]) -> dict[str, Any]:
        reply = self.system.answer(q)
        self.asked.append(q.id)
        return record_of(self.system, q, reply, departments)

    def summary(self, done: dict[str, dict[str, Any]], status: str, started: str) -> dict[str, Any]:
        records = [done[q.id] for q in self.questions if q.id in done]
        return {
            "status": status,
            **self.header,
            "started_at": started,
            "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "questions": len(self.questions),
            "recorded": len(records),
            "metrics": all_metrics(records),
        }


def header(
    dataset: Dataset,
    questions: Sequence[SuiteQuestion],
    limit: int | None,
    generator: str,
    settings: Settings,
    overrides: dict[str, str],
    documents: Sequence[DocumentRecord],
    today_from: str,
    system: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What summary.json says about a run besides its metrics. `system`: the system under
    test's description (evals/systems.py), by default our assistant with `generator`; it is
    part of the configuration, so a run is resumed and compared only with the same system."""
    present = {d.doc_id for d in documents}
    expected = {d for q in questions for d in q.expected_docs}
    return {
        "dataset": {
            "name": dataset.name,
            "path": str(dataset.path),
            "format": dataset.fmt,
            "limit": limit,
            "types": type_counts(questions),
        },
        "generator": generator,
        "configuration": {
            **configuration(settings),
            "system": system or {"kind": "assistant", "generator": generator},
        },
        "overrides": overrides,
        "corpus": corpus(documents),
        "expected_docs_not_in_store": sorted(expected - present),
        "code": code_version(),
        "today": settings.today_date().isoformat(),
        "today_from": today_from,
    }


def check_store(
    dataset: Dataset,
    questions: Sequence[SuiteQuestion],
    documents: Sequence[DocumentRecord],
    data_dir: Path,
) -> None:
    """Refuse a store that holds none of the documents the questions expect."""
    expected = {d for q in questions for d in q.expected_docs}
    if not expected or expected & {d.doc_id for d in documents}:
        return
    folder = f" {dataset.documents}" if dataset.documents else " <folder>"
    held = f"holds {len(documents)} documents but" if documents else "is empty:"
    raise InputError(
        f"the store in {data_dir} {held} none of the documents {dataset.name} expects: ingest "
        f"them first (`kb eval run --ingest{folder} ...`, or `kb ingest{folder}`)"
    )
