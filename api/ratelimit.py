"""Per-key rate limiting: a token bucket per caller.

Each key may make `burst` requests at once, refilled at `per_minute / 60` a second. A request
over the limit learns how many seconds to wait (`Retry-After`).

The buckets live in memory, or, given a `path` (the service uses `KB_DATA_DIR/ratelimit.sqlite`),
in a SQLite file that every API process of the data folder shares: N workers then allow a key
its rate once, not N times. Each request is one short write transaction (`BEGIN IMMEDIATE`),
whose lock orders the processes; the clock is `time.monotonic`, which on Linux is one clock for
every process of the machine.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PRUNE_EVERY = 1000  # shared buckets: forget refilled ones after this many requests of a process


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        path: Path | None = None,
    ) -> None:
        self.per_minute = per_minute
        self.burst = burst
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys
        self._shared = _SharedBuckets(path) if path is not None and self.enabled else None
        self._since_prune = 0

    @property
    def tracked_keys(self) -> int:
        """Keys with a bucket. Past `max_keys`, buckets that have refilled are forgotten
        (a new one would be the same), never those of keys still over their rate."""
        with self._lock:
            if self._shared is not None:
                return self._shared.count()
            return len(self._buckets)

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def acquire(self, key: str) -> float:
        """Take one request for `key`: 0 if allowed, else the seconds until one is."""
        if not self.enabled:
            return 0.0
        with self._lock:
            now = self._clock()
            if self._shared is not None:
                self._since_prune += 1
                if self._since_prune >= PRUNE_EVERY:
                    self._since_prune = 0
                    self._shared.forget_full(now, self._rate, self.burst)
                fresh = _Bucket(float(self.burst), now)
                return self._shared.update(key, fresh, lambda b: self._take(b, now))
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_keys:
                    self._forget_full(now)
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            return self._take(bucket, now)

    def _take(self, bucket: _Bucket, now: float) -> float:
        """Refill `bucket` to `now` and take one token from it: 0 if there was one, else the
        seconds until there is. Changes the bucket in place."""
        elapsed = max(0.0, now - bucket.updated)  # another process may have read a later clock
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self._rate)
        bucket.updated = max(now, bucket.updated)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they hold no state a new bucket would not."""
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self._rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]


class _SharedBuckets:
    """Buckets in a SQLite file: one row per key, read and written in one transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a lost bucket after a power cut is fine
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS buckets "
            "(key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL)"
        )

    def update(self, key: str, fresh: _Bucket, take: Callable[[_Bucket], float]) -> float:
        """`take` from the key's bucket (`fresh` when it has none) inside one write
        transaction, store the bucket as `take` left it, and return what `take` returned."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT tokens, updated FROM buckets WHERE key = ?", (key,)).fetchone()
            bucket = _Bucket(row[0], row[1]) if row else fresh
            wait = take(bucket)
            db.execute(
                "INSERT INTO buckets (key, tokens, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET tokens = excluded.tokens, "
                "updated = excluded.updated",
                (key, bucket.tokens, bucket.updated),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return wait

    def forget_full(self, now: float, rate: float, burst: int) -> None:
        self._db.execute(
            "DELETE FROM buckets WHERE tokens + (? - updated) * ? >= ?", (now, rate, burst)
        )

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM buckets").fetchone()[0])


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
