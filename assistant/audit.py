"""The audit log: who changed the knowledge base, when, and how.

An append-only JSON Lines file under `KB_DATA_DIR` (`audit.jsonl`), one entry a line:
`{"when", "who", "action", "target", "details"}`. Every review (assistant/signoff.py), upload,
sync and ingest run, and API key creation and revocation (api/) appends one. `who` is the key
id of an HTTP caller, or `cli:<user>` for the command line; key entries carry the key's id,
name, role and groups, never the key itself.

Each entry is a single `write` of one line to a file opened for appending, so entries written
by the service and the CLI at the same time never interleave; a line cut short by a crash is
ended by the next entry and skipped when the log is read. Nothing rewrites or truncates the
file. Reading loads the whole file: fine for years of a knowledge base's changes (about 300
bytes an entry).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

AUDIT_FILE = "audit.jsonl"  # under KB_DATA_DIR
log = logging.getLogger("kb.audit")


class AuditAction(StrEnum):
    REVIEW = "review"  # a document marked reviewed (target: its id)
    UPLOAD = "upload"  # documents uploaded over HTTP (target: their ids)
    SYNC = "sync"  # POST /v1/sync (target: the corpus folder)
    INGEST = "ingest"  # `kb ingest` (target: the folder)
    KEY_CREATE = "key_create"  # target: the key id
    KEY_REVOKE = "key_revoke"  # target: the key id


@dataclass(frozen=True)
class AuditEntry:
    when: str  # UTC, ISO 8601 to the second
    who: str  # key id, or "cli:<user>"
    action: AuditAction
    target: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"action": self.action.value}


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AuditLog:
    def __init__(self, path: Path, clock: Callable[[], dt.datetime] = _utc_now) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()

    def append(
        self,
        who: str,
        action: AuditAction,
        target: str,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Record one change; returns the entry written."""
        entry = AuditEntry(
            when=self._clock().astimezone(dt.UTC).isoformat(timespec="seconds"),
            who=who,
            action=action,
            target=target,
            details=dict(details or {}),
        )
        line = (json.dumps(entry.to_json(), ensure_ascii=False, default=str) + "\n").encode()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self._path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":  # a line a crash cut short
                    line = b"\n" + line  # ends there, so this entry is not glued to it
                os.write(fd, line)
            finally:
                os.close(fd)
        return entry

    def read(
        self,
        *,
        since: dt.date | None = None,
        action: AuditAction | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries newest first: at most `limit`, only those of `action`, and only those on
        or after `since` (a UTC date)."""
        if not self._path.exists():
            return []
        with self._path.open(encoding="utf-8") as lines:
            entries = [e for e in map(_parse, lines) if e is not None]
        found: list[AuditEntry] = []
        for entry in reversed(entries):
            if since is not None and entry.when[:10] < since.isoformat():
                continue
            if action is None or entry.action is action:
                found.append(entry)
                if len(found) >= limit:
                    break
        return found


def _parse(line: str) -> AuditEntry | None:
    if not line.strip():
        return None
    try:
        data = json.loads(line)
        return AuditEntry(
            when=str(data["when"]),
            who=str(data["who"]),
            action=AuditAction(data["action"]),
            target=str(data["target"]),
            details=dict(data.get("details") or {}),
        )
    except (ValueError, KeyError, TypeError):
        log.warning("skipping an unreadable audit log line: %.80s", line)
        return None
