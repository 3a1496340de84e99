"""A real `kb serve` process on loopback for the suites that need one (stalled clients, abuse,
load): started with `KB_*` settings, waited for, watched (RSS, open files, logged errors) and
stopped; and the store, keys and query log such a process serves."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.assembly import build_ingester, build_store
from api.keys import KeyStore, Role
from api.settings import Settings
from index.embedding import SentenceTransformerEmbedder
from tests.conftest import TODAY_STR, free_port
from tests.samples import write_service_base

REPO = Path(__file__).resolve().parents[2]
# The server runs `kb serve` as the CLI assembles it, after importing tests/conftest.py so that
# the process has the suite's network guard (loopback only) and offline environment too.
_SERVE = "import tests.conftest; from api.cli import main; main()"


# -- a real server process ------------------------------------------------------------------


# Bound on other users' median latency while clients are stalled, against the same requests'
# unstalled median in the same test: a stall that held the event loop, a worker or a lock would
# add whole seconds or never finish; 5x and 2 s absorb a loaded machine's noise (3x and 0.5 s
# failed once while another test process shared the two cores).
SLOWDOWN, SLACK_S = 5.0, 2.0


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    output: Path  # its stdout and stderr
    settings: Settings  # what it was started with (as its environment said)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def errors(self) -> list[str]:
        """Lines of its output that report an error or a traceback."""
        marks = ("Traceback", "ERROR", "CRITICAL", "Exception in ASGI")
        return [line for line in self.log().splitlines() if any(m in line for m in marks)]

    def rss_kib(self) -> int:
        """Resident memory now, from /proc/PID/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def client(self, key: str | None = None, timeout: float = 60) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.origin, headers=headers, timeout=timeout, trust_env=False)


@dataclass
class Served:
    """A server process and the keys made for it, by name."""

    server: ServerProcess
    keys: dict[str, str]


@contextmanager
def server_process(
    folder: Path, start_timeout_s: float = 180, **settings: Any
) -> Iterator[ServerProcess]:
    """`kb serve` in a process of its own on a free loopback port, with `KB_<NAME>` set from
    `settings` (and `KB_TODAY`, `KB_ANSWER_JUDGE=off`, `KB_LOG_LEVEL=WARNING` unless given);
    stopped (SIGTERM, then SIGKILL) when the block ends. Fails the test if it does not answer
    `GET /v1/health` within `start_timeout_s`."""
    port = free_port()
    values: dict[str, Any] = {
        "today": TODAY_STR,
        "answer_judge": "off",
        "log_level": "WARNING",
        "serve_threads": 1,
        **settings,
    }
    env = {**os.environ, **{f"KB_{k.upper()}": str(v) for k, v in values.items()}}
    env["PYTHONPATH"] = str(REPO)
    parsed = Settings(_env_file=None, **values)  # what the server reads, checked here first
    output = folder / f"server-{port}.log"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,  # models/ (the GGUF file, the ONNX export) are found from here
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(proc, port, output, parsed)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if not server.alive():
                pytest.fail(f"kb serve exited with {proc.returncode}:\n{server.log()[-3000:]}")
            try:
                health = httpx.get(f"{server.origin}/v1/health", timeout=2, trust_env=False)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"kb serve did not answer within {start_timeout_s} s")
            time.sleep(0.3)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def ingested(space: Path, embedder: SentenceTransformerEmbedder) -> tuple[Path, Path]:
    """The four documents of the HTTP tests (tests/samples.py) ingested into `space/data`;
    returns (data_dir, corpus_dir). The test process closes nothing: the server reads the store
    after the ingest has finished writing it."""
    corpus = write_service_base(space / "corpus")
    data = space / "data"
    settings = Settings(_env_file=None, data_dir=data, corpus_dir=corpus, today=TODAY_STR)
    report = build_ingester(settings, build_store(settings), embedder).sync(corpus)
    assert len(report.added) == 4, report.summary()
    return data, corpus


def make_keys(data: Path, specs: dict[str, tuple[Role, tuple[str, ...]]]) -> dict[str, str]:
    keys = KeyStore(data / "keys.sqlite")
    try:
        return {
            name: keys.create(name, role, list(groups)) for name, (role, groups) in specs.items()
        }
    finally:
        keys.close()


def key_id(key: str) -> str:
    return key.split("_")[1]


def answers_logged(data: Path, key: str, route: str) -> int:
    """Answers the query log holds for `key` on `route` (e.g. `ask`, `ask/stream`)."""
    with sqlite3.connect(data / "queries.sqlite") as db:
        row = db.execute(
            "SELECT COUNT(*) FROM answers WHERE asker = ? AND route = ?", (key_id(key), route)
        ).fetchone()
    return int(row[0])
