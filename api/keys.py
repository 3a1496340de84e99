"""API keys: who a request is, stored hashed in a small SQLite file under `KB_DATA_DIR`.

A key reads `kb_<id>_<secret>`. The id is public (it names the key in `kb keys list`, the
query log and the rate limiter); only the SHA-256 of the whole key is stored, so a copy of the
database does not let anyone call the API. The secret is 256 random bits, so a plain hash is as
strong as a slow one here and keeps every request's check to microseconds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from index.errors import InvalidRequestError, NotFoundError
from index.filters import Principal


class Role(StrEnum):
    """What a key may do. Each role may do everything the one before it may."""

    READER = "reader"  # search, ask, chat, read documents, give feedback
    SPOKE = "spoke"  # and the review queue and knowledge-gap report of what it can read
    ADMIN = "admin"  # and upload, sync; reads every document whatever its access groups

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of a request."""

    key_id: str
    name: str
    role: Role
    groups: tuple[str, ...]

    @property
    def principal(self) -> Principal:
        return Principal.of(*self.groups, admin=self.role is Role.ADMIN)


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    name: str
    role: Role
    groups: tuple[str, ...]
    created_at: str
    last_used_at: str | None
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


_KEY = re.compile(r"^kb_([a-z0-9]{8})_([A-Za-z0-9_-]{20,})$")
_GROUP = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    groups TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
)
"""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def create(self, name: str, role: Role | str, groups: list[str] | tuple[str, ...] = ()) -> str:
        """Make a key; returns the whole key, which is shown once and never stored."""
        name = name.strip()
        if not name:
            raise InvalidRequestError("name", "give the key a name that says whose it is")
        try:
            role = Role(role)
        except ValueError:
            choices = ", ".join(r.value for r in Role)
            raise InvalidRequestError("role", f"'{role}' is not one of {choices}") from None
        cleaned = sorted({g.strip().lower() for g in groups if g.strip()})
        for group in cleaned:
            if not _GROUP.match(group):
                raise InvalidRequestError(
                    "group", f"'{group}': use lower-case letters, digits, '-' and '_'"
                )
        with self._lock:
            key_id = secrets.token_hex(4)
            key = f"kb_{key_id}_{secrets.token_urlsafe(32)}"
            self._db.execute(
                "INSERT INTO api_keys (key_id, hash, name, role, groups, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, _digest(key), name, role.value, json.dumps(cleaned), _now()),
            )
        return key

    def authenticate(self, key: str) -> Caller | None:
        """The caller a key belongs to, or None for a malformed, unknown or revoked key."""
        match = _KEY.match(key.strip())
        if match is None:
            return None
        key_id = match.group(1)
        with self._lock:
            row = self._db.execute(
                "SELECT hash, name, role, groups, revoked_at FROM api_keys WHERE key_id = ?",
                (key_id,),
            ).fetchone()
            if row is None or row[4] is not None:
                return None
            if not hmac.compare_digest(row[0], _digest(key.strip())):
                return None
            self._db.execute(
                "UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (_now(), key_id)
            )
        return Caller(key_id, row[1], Role(row[2]), tuple(json.loads(row[3])))

    def list(self) -> list[KeyInfo]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key_id, name, role, groups, created_at, last_used_at, revoked_at "
                "FROM api_keys ORDER BY rowid"
            ).fetchall()
        return [
            KeyInfo(r[0], r[1], Role(r[2]), tuple(json.loads(r[3])), r[4], r[5], r[6]) for r in rows
        ]

    def revoke(self, key_id: str) -> None:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (_now(), key_id),
            )
        if cursor.rowcount == 0:
            raise NotFoundError(f"no active key '{key_id}': see `kb keys list`")
