"""Crashes (issue 17): real ingest processes killed with SIGKILL at random points, many times,
over a tree that changes between runs (files added, edited, re-owned, deleted, renamed), and
every so often a restart that runs to the end. Each restart must leave the store a fresh ingest
of the same tree into another data folder gives: the same documents, chunk ids, counts,
content hashes and chunk texts, no orphans, no duplicates, every registry record "ok", every
chunk reachable by dense search, and each document's chunks of its current version only.

The ingests are forked by tests/reliability/ingest_runner.py (`kb ingest`'s assembly from
Settings, with KB_DATA_DIR set) from one process that loaded the model once, so the random
delay (a seeded RNG: KB_CRASH_SEED) falls in the store opening and the sync, not in the model
loading. The delay is drawn up to 1.3 times the longest of the last syncs that ran to the end;
every other run is killed as soon as it marks a document "writing" if its delay has not come
first (documents are parsed and embedded a batch at a time, then written in a burst: 30 kills
at random times alone once left no document half-written at all).

KB_CRASH_KILLS sets the number of kills: the issue asks for 200; the default (20) keeps the
test near two minutes on two cores (each kill costs a fork, its sync up to the kill, and every
tenth a restart and a fresh ingest compared: about 5 s a kill, measured in the summary).
"""

from __future__ import annotations

import functools
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

KILLS = int(os.environ.get("KB_CRASH_KILLS", "20"))
SEED = int(os.environ.get("KB_CRASH_SEED", "17"))
CHECK_EVERY = 10  # kills between two restarts that run to the end and are compared
START_TIMEOUT_S = 180
RUN_TIMEOUT_S = 300
SERVER_KILLS = int(os.environ.get("KB_CRASH_SERVER_KILLS", "4"))
REPO = Path(__file__).resolve().parents[2]
CHROMA = Path(sys.executable).parent / "chroma"
FOLDERS = ["coe", "finance", "hr", "legal"]
TOPICS = ["invoice matching", "chatbot intents", "contract review", "model risk", "retention"]


@dataclass
class Doc:
    """A document of the tree: its file, its version (in every chunk's text), its owner, and
    whether its id is declared (kept across a rename) or taken from the file name."""

    rel: str
    version: int
    owner: str
    declared_id: str | None

    @property
    def doc_id(self) -> str:
        return self.declared_id or Path(self.rel).stem

    def text(self) -> str:
        n = self.version % 4 + 1  # 1 to 4 sections: the chunk count changes with the version
        topic = TOPICS[sum(map(ord, self.doc_id)) % len(TOPICS)]
        sections = "\n\n".join(
            f"## Part {s}\n\n" + f"Step {s} of {topic}, version {self.version}. " * 30
            for s in range(1, n + 1)
        )
        front = ["---", "doc_type: playbook", f"owner: {self.owner}"]
        if self.declared_id:
            front.append(f"id: {self.declared_id}")
        return "\n".join([*front, "---", f"# {self.doc_id}", "", sections, ""])


@dataclass
class Tree:
    """The folder the runs ingest, changed by a seeded RNG."""

    root: Path
    rng: random.Random
    docs: dict[str, Doc] = field(default_factory=dict)  # by rel path
    made: int = 0
    changes: dict[str, int] = field(default_factory=dict)  # kind -> how many

    def write(self, doc: Doc) -> None:
        path = self.root / doc.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(doc.text(), encoding="utf-8")
        self.docs[doc.rel] = doc

    def add(self) -> None:
        self.made += 1
        name = f"doc-{self.made:03d}"
        declared = f"kb-{self.made:03d}" if self.rng.random() < 0.5 else None
        owner = self.rng.choice(["Priya Raman", "Rosa Mendez"])
        self.write(Doc(f"{self.rng.choice(FOLDERS)}/{name}.md", 1, owner, declared))

    def change(self) -> None:
        """One random change; a tree of three documents or fewer only grows."""
        if len(self.docs) <= 3:
            kind = "add"
        else:
            kind = self.rng.choice(["add", "edit", "edit", "owner", "delete", "rename"])
        if kind == "add":
            self.add()
        else:
            doc = self.docs[self.rng.choice(sorted(self.docs))]
            {"edit": self._edit, "owner": self._owner, "delete": self._delete}.get(
                kind, self._rename
            )(doc)
        self.changes[kind] = self.changes.get(kind, 0) + 1

    def _edit(self, doc: Doc) -> None:
        self.write(Doc(doc.rel, doc.version + 1, doc.owner, doc.declared_id))

    def _owner(self, doc: Doc) -> None:
        owner = "Rosa Mendez" if doc.owner == "Priya Raman" else "Priya Raman"
        self.write(Doc(doc.rel, doc.version, owner, doc.declared_id))

    def _delete(self, doc: Doc) -> None:
        (self.root / doc.rel).unlink()
        del self.docs[doc.rel]

    def _rename(self, doc: Doc) -> None:
        self._delete(doc)
        self.made += 1
        rel = f"{self.rng.choice(FOLDERS)}/renamed-{self.made:03d}.md"
        self.write(Doc(rel, doc.version, doc.owner, doc.declared_id))

    def expected(self) -> dict[str, int]:
        """doc id -> version, as a store of this tree must hold them."""
        return {d.doc_id: d.version for d in self.docs.values()}


class Server:
    """A real `chroma run` over one folder (as tests/test_server_mode.py starts it), which the
    test kills with SIGKILL and starts again on a new port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from index.store import ChromaServer, ChromaStore
        from tests.conftest import free_port

        self.port = free_port()
        address = ["--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(self.folder), *address],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                ChromaStore.open(path=None, server=ChromaServer("127.0.0.1", self.port)).heartbeat()
                return
            except Exception:
                time.sleep(0.2)
        pytest.fail(f"chroma run did not start within {START_TIMEOUT_S} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None


@dataclass
class Run:
    """What one forked ingest did: killed or not, what it found on opening the store (None if
    killed before), its result if it finished."""

    killed: bool
    found: dict[str, str] | None
    result: dict[str, Any] | None
    error: str | None = None  # what the ingest raised (its server was killed)


class Runner:
    """The ingest_runner process: it forks one ingest per `run`."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.ingest_runner", str(root)],
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if k != "KB_CHROMA_HOST"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdin is not None
        self.stdout, self.stdin = self.proc.stdout, self.proc.stdin
        assert self._line(START_TIMEOUT_S) == ("ready", ""), "the runner did not start"

    def _line(self, timeout: float) -> tuple[str, str] | None:
        """The next line as (word, rest), or None if none came within `timeout` s."""
        if not self._selector.select(timeout):
            return None
        line = self.stdout.readline()
        assert line, f"the runner ended: {self.proc.poll()}"
        word, _, rest = line.strip().partition(" ")
        return word, rest

    @functools.cached_property
    def _selector(self) -> selectors.BaseSelector:
        sel = selectors.DefaultSelector()
        sel.register(self.stdout, selectors.EVENT_READ)
        return sel

    def _send(self, command: str) -> None:
        self.stdin.write(command + "\n")
        self.stdin.flush()

    def run(
        self,
        data: Path,
        kill_after: float | None = None,
        *,
        server: Server | None = None,
        at_write: bool = False,
    ) -> Run:
        """One ingest into `data` (or into `server`'s store), SIGKILLed `kill_after` s after
        its fork unless it ended first (`at_write`: or as soon as it has marked a document
        "writing", which a kill at a random time rarely hits now that documents are parsed
        and embedded a batch at a time and then written in a burst); with a server, the
        server is killed instead, and the ingest ends with an error."""
        self._send(f"go {data} {server.port if server else ''}".rstrip())
        got = self._line(START_TIMEOUT_S)
        assert got is not None, "the runner did not fork"
        assert got[0] == "pid", got
        pid = int(got[1])
        run = Run(killed=False, found=None, result=None)
        ended = self._read(run, RUN_TIMEOUT_S if kill_after is None else kill_after, at_write)
        if not ended:
            assert kill_after is not None, f"the ingest did not end within {RUN_TIMEOUT_S} s"
            run.killed = True
            if server is None:
                os.kill(pid, signal.SIGKILL)  # our child's child, not reaped yet: still ours
            else:
                server.kill()
                assert self._read(run, RUN_TIMEOUT_S), "the ingest hung after its server died"
        self._send(f"reap {pid}")
        while (got := self._line(RUN_TIMEOUT_S)) is not None and got[0] != "exit":
            self._take(run, *got)
        assert got is not None, "the runner did not reap its child"
        status = int(got[1].split()[1])
        if run.result is not None:  # it finished before the kill reached it
            run.killed = False
        expected = 0 if run.result else signal.SIGKILL if server is None else 256  # exit 1
        assert status == expected, f"exit status {status}: {run.error}"
        assert run.error is None or server is not None, f"the ingest failed: {run.error}"
        return run

    def _read(self, run: Run, timeout: float, at_write: bool = False) -> bool:
        """Read the child's lines until it ends (True), or `timeout` s pass or, `at_write`,
        it has marked a document "writing" (False)."""
        deadline = time.monotonic() + timeout
        while run.result is None and run.error is None:
            got = self._line(max(0.0, deadline - time.monotonic()))
            if got is None or (at_write and got[0] == "wrote" and got[1].endswith(" writing")):
                return False
            self._take(run, *got)
        return True

    @staticmethod
    def _take(run: Run, word: str, rest: str) -> None:
        if word == "found":
            run.found = json.loads(rest)
        elif word == "result":
            run.result = json.loads(rest)
        elif word == "error":
            run.error = rest

    def stop(self) -> None:
        self.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    started = Runner(tmp_path / "kb")
    yield started
    started.stop()


def _assert_converged(crashed: dict[str, Any], fresh: dict[str, Any], tree: Tree) -> None:
    got, want = crashed["store"], fresh["store"]
    assert want["registry"], "the fresh ingest stored nothing: nothing to compare"
    assert got["check"] == {
        "ok": True,
        "unreachable": [],
        "orphans": [],
        "missing": [],
        "writing": [],
        "leftovers": [],
    }
    ids = [row[0] for row in got["chunks"]]
    assert len(ids) == len(set(ids)), "duplicate chunk ids"
    assert got["registry"] == want["registry"]  # documents, paths, hashes, counts, states
    assert got["chunks"] == want["chunks"]  # chunk ids, metadata, text digests
    expected = tree.expected()
    assert set(got["registry"]) == set(expected)
    assert {r["state"] for r in got["registry"].values()} == {"ok"}
    for cid, text in got["texts"].items():
        doc_id = cid.rsplit(":", 2)[0]
        assert f"version {expected[doc_id]}." in text, f"{cid} is not of the current version"


@dataclass
class Tally:
    kills: int = 0
    ended_first: int = 0  # runs that finished before their delay ran out
    in_sync: int = 0  # kills after the run had opened the store and read the registry
    found_half_written: int = 0  # runs that opened a store a kill had left half-written
    checks: int = 0
    sync_s: list[float] = field(default_factory=list)


def test_sigkilled_ingests_converge_to_a_fresh_ingest(
    tmp_path: Path, runner: Runner, record_property: Callable[[str, object], None]
) -> None:
    started = time.perf_counter()
    rng = random.Random(SEED)
    tree = Tree(tmp_path / "kb", rng)
    data = tmp_path / "data"
    for _ in range(8):
        tree.add()
    tally = Tally()

    def restart_and_compare() -> None:
        restart = runner.run(data)
        fresh = runner.run(tmp_path / f"fresh-{tally.checks}")
        assert restart.result is not None
        assert fresh.result is not None
        tally.sync_s.append(restart.result["seconds"])
        tally.found_half_written += bool(restart.found)
        _assert_converged(restart.result, fresh.result, tree)
        tally.checks += 1

    restart_and_compare()  # the first full ingest

    def window() -> float:
        return 1.3 * max(tally.sync_s[-5:])

    attempts = 0
    while tally.kills < KILLS:
        attempts += 1
        assert attempts <= 3 * KILLS, f"only {tally.kills} kills in {attempts} runs"
        for _ in range(rng.randint(0, 3)):
            tree.change()
        # Every other run is killed at its first "writing" mark, unless its time comes first.
        run = runner.run(data, kill_after=rng.uniform(0.0, window()), at_write=attempts % 2 == 0)
        if run.result is not None:
            tally.sync_s.append(run.result["seconds"])
        tally.kills += run.killed
        tally.ended_first += not run.killed
        tally.in_sync += run.killed and run.found is not None
        tally.found_half_written += bool(run.found)
        if run.killed and tally.kills % CHECK_EVERY == 0:
            restart_and_compare()
    if tally.kills % CHECK_EVERY:
        restart_and_compare()

    seconds = time.perf_counter() - started
    summary = {
        "kills": tally.kills,
        "ended_first": tally.ended_first,
        "kills_in_sync": tally.in_sync,
        "runs_that_found_half_written": tally.found_half_written,
        "compared_restarts": tally.checks,
        "tree_changes": tree.changes,
        "documents_at_the_end": len(tree.docs),
        "seconds": round(seconds, 1),
        "seconds_per_kill": round(seconds / tally.kills, 2),
        "last_window_s": round(window(), 2),
        "sync_s_max": round(max(tally.sync_s), 2),
    }
    for key, value in summary.items():
        record_property(key, value)
    print(json.dumps(summary))
    # The kills did what they are for: they fell inside syncs and left work half-done.
    assert tally.kills == KILLS
    assert tally.in_sync >= KILLS // 3
    assert tally.found_half_written >= 1
    assert tally.checks == 1 + KILLS // CHECK_EVERY + (KILLS % CHECK_EVERY != 0)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = Server(tmp_path / "chroma-server")
    started.start()
    yield started
    started.kill()


def test_a_chroma_server_killed_mid_write_converges(
    tmp_path: Path,
    runner: Runner,
    server: Server,
    record_property: Callable[[str, object], None],
) -> None:
    """The shared deployment: the `chroma run` server is SIGKILLed while an ingest writes to
    it (the ingest fails), started again on its folder, and the tree changes; after the last
    kill one ingest runs to the end and the server's store equals a fresh embedded ingest."""
    started = time.perf_counter()
    rng = random.Random(SEED + 1)
    tree = Tree(tmp_path / "kb", rng)
    for _ in range(8):
        tree.add()
    first = runner.run(tmp_path / "data", server=server)
    assert first.result is not None
    window = 1.3 * first.result["seconds"]
    kills = errors = attempts = 0
    while kills < SERVER_KILLS:
        attempts += 1
        assert attempts <= 3 * SERVER_KILLS, f"only {kills} kills in {attempts} runs"
        for _ in range(rng.randint(1, 3)):
            tree.change()
        run = runner.run(tmp_path / "data", rng.uniform(0.0, window), server=server)
        if run.killed:
            kills += 1
            errors += run.error is not None
            server.start()
    restart = runner.run(tmp_path / "data", server=server)
    fresh = runner.run(tmp_path / "fresh")
    assert restart.result is not None
    assert fresh.result is not None
    _assert_converged(restart.result, fresh.result, tree)
    seconds = time.perf_counter() - started
    record_property("server_kills", kills)
    record_property("server_seconds", round(seconds, 1))
    print(json.dumps({"server_kills": kills, "runs": attempts, "seconds": round(seconds, 1)}))
    assert errors == kills  # every kill hit an ingest that was talking to the server
