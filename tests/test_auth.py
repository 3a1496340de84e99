"""API keys and rate limiting, as units: the key store on a real SQLite file, the token bucket
on a clock the test moves."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from api.keys import KeyStore, Role
from api.ratelimit import RateLimiter, retry_after_header
from index.errors import InvalidRequestError, NotFoundError


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.sqlite")


def test_a_key_authenticates_as_its_role_and_groups(keys: KeyStore) -> None:
    key = keys.create("finance spoke", Role.SPOKE, ["Finance", " legal ", "finance"])
    caller = keys.authenticate(key)
    assert caller is not None
    assert caller.role is Role.SPOKE
    assert caller.groups == ("finance", "legal")
    assert caller.principal.groups == frozenset({"finance", "legal"})
    assert not caller.principal.admin
    assert key.startswith(f"kb_{caller.key_id}_")


def test_only_the_hash_is_stored(keys: KeyStore, tmp_path: Path) -> None:
    key = keys.create("reader", Role.READER)
    secret = key.split("_", 2)[2]
    dump = "\n".join(sqlite3.connect(tmp_path / "keys.sqlite").iterdump())
    assert secret not in dump
    assert key not in dump


def test_wrong_malformed_and_revoked_keys_are_refused(keys: KeyStore) -> None:
    key = keys.create("admin", Role.ADMIN)
    caller = keys.authenticate(key)
    assert caller is not None
    assert caller.principal.admin
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert keys.authenticate(tampered) is None
    assert keys.authenticate("kb_zzzzzzzz_" + "x" * 43) is None
    assert keys.authenticate("not a key") is None
    assert keys.authenticate("") is None
    keys.revoke(caller.key_id)
    assert keys.authenticate(key) is None
    [info] = keys.list()
    assert not info.active
    with pytest.raises(NotFoundError, match="kb keys list"):
        keys.revoke(caller.key_id)  # already revoked


def test_listing_records_last_use(keys: KeyStore) -> None:
    key = keys.create("bot", Role.READER)
    assert keys.list()[0].last_used_at is None
    keys.authenticate(key)
    assert keys.list()[0].last_used_at is not None


@pytest.mark.parametrize(
    ("name", "role", "groups", "parameter"),
    [
        ("", Role.READER, [], "name"),
        ("x", "superuser", [], "role"),
        ("x", Role.READER, ["has space"], "group"),
        ("x", Role.READER, ["../etc"], "group"),
    ],
)
def test_bad_key_requests_name_the_parameter(
    keys: KeyStore, name: str, role: str, groups: list[str], parameter: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        keys.create(name, role, groups)
    assert caught.value.parameter == parameter


def test_roles_are_ordered() -> None:
    assert Role.ADMIN.allows(Role.SPOKE)
    assert Role.SPOKE.allows(Role.READER)
    assert not Role.READER.allows(Role.SPOKE)
    assert not Role.SPOKE.allows(Role.ADMIN)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "shared-file"])
def test_bucket_allows_a_burst_then_the_rate(shared: bool, tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "ratelimit.sqlite" if shared else None
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock, path=path)
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("k")
    assert wait == pytest.approx(1.0)  # one request a second
    assert retry_after_header(wait) == "1"
    assert limiter.acquire("other") == 0.0  # buckets are per key
    clock.now += 0.5
    assert limiter.acquire("k") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("k") == 0.0
    clock.now += 3600
    assert [limiter.acquire("k") for _ in range(4)][-1] > 0  # refills to the burst, no more


def test_zero_rate_means_no_limit() -> None:
    limiter = RateLimiter(per_minute=0, burst=1)
    assert not limiter.enabled
    assert all(limiter.acquire("k") == 0.0 for _ in range(1000))


def test_a_full_table_forgets_refilled_buckets_and_keeps_limited_ones() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=2, clock=clock, max_keys=2)
    assert limiter.acquire("idle") == 0.0
    assert [limiter.acquire("busy") for _ in range(3)][-1] > 0  # busy is over its limit
    clock.now += 1  # idle has refilled; busy has one request back, not its burst
    assert limiter.acquire("newcomer") == 0.0
    assert limiter.tracked_keys == 2  # idle was forgotten to make room
    assert limiter.acquire("busy") == 0.0
    assert limiter.acquire("busy") > 0  # busy is still limited: its bucket was not reset


SPEND = """
import sys
from pathlib import Path
from api.ratelimit import RateLimiter
limiter = RateLimiter(per_minute=1, burst=int(sys.argv[2]), path=Path(sys.argv[1]))
print(sum(limiter.acquire("shared-key") == 0.0 for _ in range(int(sys.argv[3]))))
"""


def test_processes_sharing_a_data_folder_share_each_keys_budget(tmp_path: Path) -> None:
    """Four processes at once, each trying 20 requests of one key with a burst of 30: 30 are
    allowed in all, not 30 each (one a minute refills nothing meanwhile)."""
    path = tmp_path / "ratelimit.sqlite"
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", SPEND, str(path), "30", "20"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    allowed = [int(run.communicate(timeout=120)[0]) for run in runs]
    assert sum(allowed) == 30, allowed
    assert RateLimiter(per_minute=1, burst=30, path=path).acquire("shared-key") > 0
    assert RateLimiter(per_minute=1, burst=30, path=path).acquire("another-key") == 0.0


def test_keys_are_listed_in_creation_order(keys: KeyStore) -> None:
    names = [f"key {i}" for i in range(12)]  # all within one second: ids are random
    for name in names:
        keys.create(name, Role.READER)
    assert [k.name for k in keys.list()] == names
