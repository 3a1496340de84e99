"""Evaluation runs started over HTTP (`POST /v1/evals/runs`): one at a time, in a background
thread, over the service's own store, embedder and settings (changed for the run by `set` and
`generator`, validated as `kb eval run --set` validates them), each in a folder of
`KB_DATA_DIR/evals` named by its id, the same run folder `kb eval run` writes (evals/suite.py).

Only the known datasets are taken by name (evals/suite_data.py `known_datasets`): a request
cannot make the service read a file of its choosing. A run id is the folder's name; an id that
is not one folder directly under the runs folder is unknown (404), so no id reaches outside it.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from api.settings import Settings
from evals.compare import Run
from evals.report_html import STYLE_HASH, render
from evals.suite import (
    SUMMARY,
    Progress,
    Suite,
    check_store,
    header,
    read_summary,
    run_today,
    with_overrides,
    write_summary,
)
from evals.suite_data import known_datasets, select
from evals.systems import SystemChoice, Workbench, build_system
from index.embedding import Embedder
from index.errors import ConflictError, InvalidRequestError, NotFoundError
from index.filelock import FileLock
from index.store import ChromaStore

SERVICE_LOCK = ".service-run.lock"  # one run at a time across the service's processes
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class RunStatus:
    id: str
    status: str  # running | complete | interrupted | failed
    dataset: str
    done: int
    total: int
    started_at: str
    error: str | None = None


class EvalRuns:
    """Starts runs in a thread and reports on every run folder under `runs_dir`."""

    report_style_hashes = (STYLE_HASH,)  # what a CSP must allow for the report's stylesheet

    def __init__(
        self, settings: Settings, store: ChromaStore, embedder: Embedder, runs_dir: Path
    ) -> None:
        self._settings = settings
        self._store = store
        self._embedder = embedder
        self.runs_dir = runs_dir
        # held from start() until the run's thread ends, across every process serving this
        # data folder (uvicorn workers, other `kb serve`s)
        self._busy = FileLock(runs_dir / SERVICE_LOCK)
        self._active: RunStatus | None = None
        self._thread: threading.Thread | None = None
        self._suite: Suite | None = None

    # -- starting ------------------------------------------------------------------------------

    def start(
        self,
        dataset: str,
        generator: str | None = None,
        limit: int | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> RunStatus:
        """Check the request, then answer its questions in a thread; 409 while a run is going."""
        if not self._busy.try_acquire():
            active = self._active
            running = "another process's run"
            if active is not None and active.status == "running":
                running = active.id
            raise ConflictError(
                f"an evaluation run is in progress ({running}): one runs at a time; retry when "
                "GET /v1/evals/runs says it is done"
            )
        try:
            suite = self._prepare(dataset, generator, limit, overrides or {})
        except BaseException:
            self._busy.release()
            raise
        self._active = RunStatus(
            suite.folder.name, "running", dataset, 0, len(suite.questions), _now()
        )
        self._suite = suite
        self._thread = threading.Thread(
            target=self._run, args=(suite,), name=f"eval-{suite.folder.name}", daemon=True
        )
        self._thread.start()
        return self._active

    def _prepare(
        self, name: str, generator: str | None, limit: int | None, overrides: Mapping[str, Any]
    ) -> Suite:
        known = {d.name: d for d in known_datasets()}
        if name not in known:
            raise InvalidRequestError(
                "dataset", f"unknown dataset '{name}': use one of {', '.join(known)}"
            )
        pairs = [f"{k}={_text(v)}" for k, v in overrides.items()]
        pairs += [f"generator={generator}"] if generator else []
        settings, changed = with_overrides(self._settings, pairs)
        chosen = known[name]
        questions = select(chosen.load(), limit)
        settings, today_from = run_today(settings, chosen)
        documents = self._store.documents()
        check_store(chosen, questions, documents, settings.data_dir)
        bench = Workbench(settings, self._store, self._embedder, documents)
        system = build_system(SystemChoice(), bench)  # our assistant
        made = header(
            chosen,
            questions,
            limit,
            system.generator,
            settings,
            changed,
            documents,
            today_from,
            system.describe(),
        )
        folder = self._new_folder(name)
        return Suite(questions, system, documents, folder, made, progress=self._progressed)

    def _new_folder(self, dataset: str) -> Path:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = self.runs_dir / f"{dataset}-{stamp}"
        n = 1
        while folder.exists():
            n += 1
            folder = self.runs_dir / f"{dataset}-{stamp}-{n}"
        return folder

    def _progressed(self, p: Progress) -> None:
        if self._active is not None:
            self._active = replace(self._active, done=p.done, total=p.total)

    def _run(self, suite: Suite) -> None:
        try:
            summary = suite.run()
            self._finish(summary["status"])
        except Exception as exc:  # the thread's end: recorded for GET, and in summary.json
            error = f"{type(exc).__name__}: {exc}"
            if (suite.folder / SUMMARY).is_file():
                write_summary(
                    suite.folder, {**read_summary(suite.folder), "status": "failed", "error": error}
                )
            self._finish("failed", error)
        finally:
            self._busy.release()

    def _finish(self, status: str, error: str | None = None) -> None:
        if self._active is not None:
            self._active = replace(self._active, status=status, error=error)

    def wait(self, timeout_s: float | None = None) -> None:
        """Until the run started last has ended, or `timeout_s` has passed."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """At the service's shutdown: end the run going on after its current question, as an
        interrupted run with its summary written, and wait for that (`timeout_s` at most)."""
        if self._suite is not None:
            self._suite.stop.set()
        self.wait(timeout_s)

    # -- reporting -----------------------------------------------------------------------------

    def runs(self) -> list[RunStatus]:
        """Every run folder (and the run just started, before it has written one), the
        latest started first."""
        ids = {p.parent.name for p in self.runs_dir.glob(f"*/{SUMMARY}")}
        if self._active is not None:
            ids.add(self._active.id)
        return sorted((self.get(i) for i in ids), key=lambda r: r.started_at, reverse=True)

    def get(self, run_id: str) -> RunStatus:
        active = self._active
        if active is not None and active.id == run_id:
            written = (self.runs_dir / run_id / SUMMARY).is_file()
            if active.status == "running" or not written:  # the live figures, or all there is
                return active
        summary = read_summary(self.folder(run_id))
        return RunStatus(
            run_id,
            str(summary.get("status", "")),
            str(summary.get("dataset", {}).get("name", "")),
            int(summary.get("recorded", 0)),
            int(summary.get("questions", 0)),
            str(summary.get("started_at", "")),
            summary.get("error") or (active.error if active and active.id == run_id else None),
        )

    def summary(self, run_id: str) -> dict[str, Any] | None:
        """summary.json of the run; None for the run just started that failed before
        writing one (its error is in `get`)."""
        active = self._active
        if active is not None and active.id == run_id and not (self.runs_dir / run_id).is_dir():
            return None
        return read_summary(self.folder(run_id))

    def folder(self, run_id: str) -> Path:
        """The run's folder: a folder directly under the runs folder holding a summary."""
        folder = self.runs_dir / run_id
        if (
            not RUN_ID.fullmatch(run_id)
            or folder.resolve().parent != self.runs_dir.resolve()
            or not (folder / SUMMARY).is_file()
        ):
            raise NotFoundError(f"no evaluation run '{run_id}': see GET /v1/evals/runs")
        return folder

    def report(self, run_id: str, baseline: str | None = None) -> str:
        """The HTML report of a run (evals/report_html.py), against `baseline` when given."""
        runs = [Run.load(self.folder(run_id))]
        if baseline:
            runs.append(Run.load(self.folder(baseline)))
        return render(runs)


def _text(value: Any) -> str:
    """A JSON value as `kb eval run --set` would take it: true/false, numbers, text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
