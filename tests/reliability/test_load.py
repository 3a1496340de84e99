"""A bounded load run (issue 17, item 8): a real `kb serve` process on loopback (extractive
generator), client threads asking and searching as reader and spoke keys of several groups for
`KB_LOAD_SECONDS` (45 s by default; `KB_LOAD_SECONDS=300` is the issue's five minutes), with
`KB_LOAD_THREADS` clients (4). Promised: zero errors (every response a 200, none revealing the
finance-only document to a key outside finance), throughput and p95 per route recorded, and the
server's resident memory (sampled every second from /proc) without a growth trend: after a
warm-up, the median of the last third of the run within a tolerance of the middle third's.
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from api.keys import Role
from index.embedding import SentenceTransformerEmbedder
from tests.reliability.server_process import (
    ServerProcess,
    ingested,
    make_keys,
    server_process,
)

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("KB_LOAD_SECONDS", "45"))
THREADS = int(os.environ.get("KB_LOAD_THREADS", "4"))
WARM_REQUESTS = 5  # per client and route, before the clock and the memory samples start
# Growth allowed from the middle third's median RSS to the last third's: caches that are still
# filling (the embedding cache, SQLite's page cache) settle within the warm-up on this small
# base; a leak of even 1 KiB a request (about 20 req/s) would add 3.6 MiB in three minutes.
RSS_TOLERANCE = 0.03
RSS_SLACK_KIB = 4 * 1024

KEYS = {
    "reader_public": (Role.READER, ()),
    "reader_finance": (Role.READER, ("finance",)),
    "reader_it": (Role.READER, ("it",)),
    "spoke_cs": (Role.SPOKE, ("customer_service",)),
    "spoke_legal": (Role.SPOKE, ("legal",)),
    "spoke_finance": (Role.SPOKE, ("finance",)),
}
RESTRICTED = "prices"  # tests/samples.py: the DocuSift price list, finance only
SECRET = "0.045"
QUESTIONS = [
    "How long does the KAIG gateway keep prompts and answers?",
    "How much did the Ask Kestrel chatbot deflect?",
    "What does ClauseWise flag?",
    "What does DocuSift charge per invoice page?",
    "Who owns the KAIG FAQ?",
]


def request(route: str, text: str) -> tuple[str, dict[str, Any]]:
    if route == "search":
        return "/v1/search", {"query": text, "k": 5}
    return "/v1/ask", {"question": text}


def _doc_ids(route: str, body: dict[str, Any]) -> set[str]:
    if route == "search":
        return {h["doc_id"] for h in body["hits"]}
    return {c["doc_id"] for c in body["citations"]}


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    by_key: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    restricted_seen: int = 0  # finance keys' responses holding the finance-only document
    lock: threading.Lock = field(default_factory=threading.Lock)


def _call(client: httpx.Client, who: str, route: str, text: str, tally: Tally | None) -> None:
    path, body = request(route, text)
    started = time.perf_counter()
    try:
        response = client.post(path, json=body)
    except httpx.HTTPError as exc:
        problem: str | None = f"{route} {who}: {exc!r}"
        took, ids, leaked = 0.0, set(), False
    else:
        took = time.perf_counter() - started
        problem = None if response.status_code == 200 else f"{route} {who}: {response.status_code}"
        ids = _doc_ids(route, response.json()) if problem is None else set()
        finance = "finance" in KEYS[who][1]
        leaked = not finance and (RESTRICTED in ids or SECRET in response.text)
        if leaked:
            problem = f"{route} {who}: the finance-only document was served"
    if tally is None:
        assert problem is None, problem
        return
    with tally.lock:
        if problem:
            tally.errors.append(problem)
        else:
            tally.latencies[route].append(took)
            tally.by_key[who] += 1
            tally.restricted_seen += RESTRICTED in ids


def _client_loop(
    server: ServerProcess,
    keys: dict[str, str],
    seed: int,
    tally: Tally,
    start: threading.Barrier,
    stop: threading.Event,
) -> None:
    rng = random.Random(seed)
    names = sorted(keys)
    clients = {who: server.client(keys[who], timeout=60) for who in names}
    try:
        who = names[seed % len(names)]
        try:
            for route in ("search", "ask"):  # warm: lazy indexes, caches, connections
                for text in QUESTIONS[:WARM_REQUESTS]:
                    _call(clients[who], who, route, text, None)
        except BaseException:
            start.abort()  # the test fails at once instead of waiting for this client
            raise
        start.wait()
        while not stop.is_set():
            who = rng.choice(names)
            route = rng.choice(("search", "search", "ask"))  # searches are the common call
            _call(clients[who], who, route, rng.choice(QUESTIONS), tally)
    finally:
        for client in clients.values():
            client.close()


def _sample_rss(server: ServerProcess, stop: threading.Event, out: list[int]) -> None:
    while not stop.wait(1.0):
        out.append(server.rss_kib())


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    space = tmp_path_factory.mktemp("load")
    data, corpus = ingested(space, embedder)
    keys = make_keys(data, dict(KEYS))
    with server_process(
        space, data_dir=data, corpus_dir=corpus, generator="extractive", rate_limit_per_minute=0
    ) as live:
        yield live, keys


def test_a_bounded_load_run_has_no_errors_and_no_memory_growth(
    server: tuple[ServerProcess, dict[str, str]],
    record_property: Callable[[str, object], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    live, keys = server
    tally, stop, rss = Tally(), threading.Event(), list[int]()
    start = threading.Barrier(THREADS + 1, timeout=300)  # every client warmed up: the run starts
    clients = [
        threading.Thread(
            target=_client_loop, args=(live, keys, seed, tally, start, stop), daemon=True
        )
        for seed in range(THREADS)
    ]
    for thread in clients:
        thread.start()
    start.wait()
    rss_start = live.rss_kib()
    sampler = threading.Thread(target=_sample_rss, args=(live, stop, rss), daemon=True)
    started = time.monotonic()
    sampler.start()
    time.sleep(SECONDS)
    stop.set()
    for thread in [*clients, sampler]:
        thread.join(timeout=120)
    duration = time.monotonic() - started
    rss_end = live.rss_kib()

    lines = [f"load: {THREADS} clients, {duration:.0f} s, {len(keys)} keys"]
    for route, seen in sorted(tally.latencies.items()):
        rate, p95 = len(seen) / duration, _p95(seen)
        record_property(f"{route}_requests_per_s", round(rate, 2))
        record_property(f"{route}_p95_ms", round(p95 * 1000, 1))
        lines.append(
            f"  {route}: {len(seen)} requests, {rate:.1f} req/s, "
            f"p50 {statistics.median(seen) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms"
        )
    thirds = len(rss) // 3
    middle, last = statistics.median(rss[thirds : 2 * thirds]), statistics.median(rss[2 * thirds :])
    record_property("rss_start_mib", round(rss_start / 1024, 1))
    record_property("rss_end_mib", round(rss_end / 1024, 1))
    lines.append(
        f"  RSS MiB: start {rss_start / 1024:.1f}, middle third median {middle / 1024:.1f}, "
        f"last third median {last / 1024:.1f}, end {rss_end / 1024:.1f} ({len(rss)} samples); "
        f"errors {len(tally.errors)}"
    )
    with capsys.disabled():
        print("\n" + "\n".join(lines))

    assert not any(t.is_alive() for t in clients)
    assert tally.errors == []
    assert set(tally.latencies) == {"ask", "search"}
    assert min(len(v) for v in tally.latencies.values()) >= 20
    assert set(tally.by_key) == set(keys)  # every key, of every group, was served
    assert tally.restricted_seen > 0  # the finance keys did see it: the leak check can fail
    assert len(rss) >= SECONDS * 0.8
    assert last <= middle * (1 + RSS_TOLERANCE) + RSS_SLACK_KIB, (middle, last)
    assert live.alive()
    assert live.errors() == []
