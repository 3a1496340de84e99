"""The cross-process lock (index/filelock.py) and the commands that take it: one ingest of a data
folder at a time, whichever process runs it, and a killed holder never leaves it held."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.filelock import FileLock
from tests.conftest import markdown, write
from tests.test_cli import kb

HOLDER = """
import sys, time
from pathlib import Path
from index.filelock import FileLock
assert FileLock(Path(sys.argv[1])).try_acquire()
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def held_elsewhere(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A lock file held by another process, and that process (killed at the end)."""
    path = tmp_path / "data" / "ingest.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        yield path, holder
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_second_holder_is_refused_until_the_first_releases(tmp_path: Path) -> None:
    first, second = FileLock(tmp_path / "x.lock"), FileLock(tmp_path / "x.lock")
    assert not first.held()
    assert first.try_acquire()
    assert not first.try_acquire()  # not re-entrant: a second take by the holder fails too
    assert not second.try_acquire()
    assert second.held()
    first.release()
    assert not second.held()
    assert second.try_acquire()
    second.release()


def test_threads_sharing_one_lock_get_it_once(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "x.lock")
    start, won = threading.Barrier(8), []

    def take() -> None:
        start.wait()
        won.append(lock.try_acquire())

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lock.release()
    assert sorted(won) == [False] * 7 + [True]


def test_a_lock_held_by_another_process_is_released_when_it_is_killed(
    held_elsewhere: tuple[Path, subprocess.Popen[str]],
) -> None:
    path, holder = held_elsewhere
    mine = FileLock(path)
    assert mine.held()
    assert not mine.try_acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert mine.try_acquire()  # the kernel dropped the killed process's lock
    mine.release()


def test_kb_ingest_refuses_while_another_process_ingests_and_stores_nothing(
    held_elsewhere: tuple[Path, subprocess.Popen[str]], tmp_path: Path
) -> None:
    path, holder = held_elsewhere
    data = path.parent
    docs = tmp_path / "docs"
    write(docs / "intake.md", markdown("intake", "# Intake\n\nSubmit the AI-01 form."))
    refused = kb(data, "ingest", str(docs), "--json")
    assert refused.returncode == 2
    assert "another upload or sync is running on this data folder" in refused.stderr
    assert "kb ingest" in refused.stderr  # names what may hold it
    assert json.loads(kb(data, "docs", "--json").stdout) == []
    holder.kill()
    holder.wait(timeout=30)
    done = kb(data, "ingest", str(docs), "--json")
    assert done.returncode == 0, done.stderr
    assert [d["doc_id"] for d in json.loads(done.stdout)["added"]] == ["intake"]
    assert [d["doc_id"] for d in json.loads(kb(data, "docs", "--json").stdout)] == ["intake"]
