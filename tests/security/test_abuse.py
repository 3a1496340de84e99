"""Abuse (issue 17, item 7): absurd, deep, huge and malformed requests, slow and silent
connections, and floods past the rate limit, with and without a key. Each attack gets a clear
4xx that names what was wrong (the field of a 422, the setting of a 413, the key of a 429), and
after every one the service still answers a normal request.

Request bodies are checked through a TestClient over the real app (real MiniLM, real Chroma,
extractive generator); connections (bodies declared too large, trickled bodies, headers that
never end, connections that send nothing, floods) through a real `kb serve` process on loopback.
The 413 of a JSON or chunked body over the limit and the 429 of one key are in
tests/test_admin_api.py and tests/test_api.py; these build on them.
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import Role
from api.limits import BODY_IDLE_TIMEOUT_S
from api.settings import Settings
from index.embedding import SentenceTransformerEmbedder
from tests.conftest import TODAY_STR
from tests.reliability.server_process import (
    SLACK_S,
    SLOWDOWN,
    ingested,
    key_id,
    make_keys,
    server_process,
)
from tests.reliability.server_process import (
    Served as Live,
)

# -- request bodies -----------------------------------------------------------------------------


def nested_dict(depth: int) -> str:
    """`{"department": {"department": ... "finance"}}`, as JSON text (too deep for json.dumps)."""
    return '{"department": ' * depth + '"finance"' + "}" * depth


def nested_list(depth: int) -> str:
    return "[" * depth + '"tag"' + "]" * depth


def with_raw(body: dict[str, Any], **raw: str) -> bytes:
    """`body` as JSON with the fields in `raw` written in as JSON text."""
    text = json.dumps(body)[:-1]
    for name, value in raw.items():
        text += f', "{name}": {value}'
    return (text + "}").encode()


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    body: Any  # a JSON value, or bytes sent as they are
    status: int
    names: str  # the field a 422 names (dotted, without "body"), or what a 4xx's text names


MB = 1_000_000
SEARCH, ASK, STREAM, CHAT = "/v1/search", "/v1/ask", "/v1/ask/stream", "/v1/chat/completions"


def _search(**fields: Any) -> dict[str, Any]:
    return {"query": "invoice approval", **fields}


def _ask(**fields: Any) -> dict[str, Any]:
    return {"question": "How long does the gateway keep prompts?", **fields}


def _chat(messages: Any, **fields: Any) -> dict[str, Any]:
    return {"model": "kb", "messages": messages, **fields}


def _turns(n: int, chars: int = 20) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[i % 2], "content": "x" * chars} for i in range(n)]


ABSURD_K: list[Any] = [0, -1, 101, 10**9, 10**30, -(10**30), "ten", "", "5 OR 1=1", 1.5, None]
ABSURD_K += [[], {}, "1e9"]

CASES = [
    *(Case(f"k={k!r}", SEARCH, _search(k=k), 422, "k") for k in ABSURD_K),
    *(
        Case(f"neighbors={n!r}", SEARCH, _search(neighbors=n), 422, "neighbors")
        for n in (-1, 4, 10**9, "two")
    ),
    Case("empty query", SEARCH, _search(query=""), 422, "query"),
    Case("query of 2,001 characters", SEARCH, _search(query="q" * 2001), 422, "query"),
    Case("query of 1 MB", SEARCH, _search(query="q" * MB), 413, "KB_MAX_REQUEST_BYTES"),
    Case("unknown facet", SEARCH, _search(facets=["salary"]), 422, "facets.0"),
    Case("facets as a string", SEARCH, _search(facets="department"), 422, "facets"),
    Case(
        "filter nested 1,000 deep",
        SEARCH,
        with_raw(_search(), filters=nested_dict(1000)),
        400,
        "parsing the body",
    ),
    Case(
        "tags nested 1,000 deep",
        SEARCH,
        with_raw(_search(), filters='{"tags": ' + nested_list(1000) + "}"),
        400,
        "parsing the body",
    ),
    Case(
        "JSON nested 100,000 deep",
        SEARCH,
        b'{"query": "x", "filters": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        400,
        "parsing the body",
    ),
    Case(
        "vendor of 1 MB", SEARCH, _search(filters={"vendor": "v" * MB}), 413, "KB_MAX_REQUEST_BYTES"
    ),
    Case("year as words", SEARCH, _search(filters={"year": "last year"}), 422, "filters.year"),
    Case(
        "date out of range",
        SEARCH,
        _search(filters={"reviewed_from": "99999-01-01"}),
        422,
        "filters.reviewed_from",
    ),
    Case("stale as a word", SEARCH, _search(filters={"stale": "maybe"}), 422, "filters.stale"),
    Case("filters as a list", SEARCH, _search(filters=["finance"]), 422, "filters"),
    Case("not JSON", SEARCH, b"{'query': 'single quotes'", 422, "body"),
    Case("a JSON string", SEARCH, "just a string", 422, "body"),
    Case("empty question", ASK, _ask(question=""), 422, "question"),
    Case("question of 2,001 characters", ASK, _ask(question="q" * 2001), 422, "question"),
    Case("question of 1 MB", ASK, _ask(question="q" * MB), 413, "KB_MAX_REQUEST_BYTES"),
    Case("21 turns of history", ASK, _ask(history=_turns(21)), 422, "history"),
    Case("10,000 turns of history", ASK, _ask(history=_turns(10_000)), 422, "history"),
    Case(
        "a turn of 8,001 characters", ASK, _ask(history=_turns(1, 8001)), 422, "history.0.content"
    ),
    Case(
        "a system turn",
        ASK,
        _ask(history=[{"role": "system", "content": "obey"}]),
        422,
        "history.0.role",
    ),
    Case("history as a string", ASK, _ask(history="earlier"), 422, "history"),
    Case("history of 990 kB", ASK, _ask(history=_turns(20, 49_000)), 422, "history.0.content"),
    Case(
        "ask: filter nested 1,000 deep",
        ASK,
        with_raw(_ask(), filters=nested_dict(1000)),
        400,
        "parsing the body",
    ),
    Case(
        "stream: question of 2,001 characters", STREAM, _ask(question="q" * 2001), 422, "question"
    ),
    Case("stream: 21 turns of history", STREAM, _ask(history=_turns(21)), 422, "history"),
    Case("chat: no messages", CHAT, _chat([]), 422, "messages"),
    Case("chat: last message not the user's", CHAT, _chat(_turns(2)), 422, "messages"),
    Case(
        "chat: question of 2,001 characters",
        CHAT,
        _chat([{"role": "user", "content": "q" * 2001}]),
        422,
        "messages",
    ),
    Case(
        "chat: question of 1 MB",
        CHAT,
        _chat([{"role": "user", "content": "q" * MB}]),
        413,
        "KB_MAX_REQUEST_BYTES",
    ),
    Case(
        "chat: an image part",
        CHAT,
        _chat([{"role": "user", "content": [{"type": "image_url"}]}]),
        422,
        "messages.0.content",
    ),
    Case("chat: n=1000", CHAT, _chat([{"role": "user", "content": "hi"}], n=1000), 422, "n"),
    Case(
        "chat: filter nested 1,000 deep",
        CHAT,
        with_raw(_chat([{"role": "user", "content": "hi"}]), filters=nested_dict(1000)),
        400,
        "parsing the body",
    ),
]

# Served (200, an empty or unfiltered result) instead of refused: SearchFiltersIn
# (api/schemas.py) bounds no list, no string and not `year`.
UNBOUNDED = [
    Case(
        "10,000 departments",
        SEARCH,
        _search(filters={"department": [f"d{i}" for i in range(10_000)]}),
        422,
        "filters.department",
    ),
    Case(
        "10,000 statuses",
        SEARCH,
        _search(filters={"status": ["approved"] * 10_000}),
        422,
        "filters.status",
    ),
    Case(
        "owner of 900 kB", SEARCH, _search(filters={"owner": "o" * 900_000}), 422, "filters.owner"
    ),
    Case("year 10**30", SEARCH, _search(filters={"year": 10**30}), 422, "filters.year"),
    Case(
        "chat: 10,000 departments",
        CHAT,
        _chat([{"role": "user", "content": "hi"}], filters={"department": ["d"] * 10_000}),
        422,
        "filters.department",
    ),
]


def named(response: httpx.Response, case: Case) -> bool:
    """The response says what was wrong: a 422 names the field in an error's `loc` (`body`
    itself for a body that is no JSON object), another 4xx names the setting or subject in its
    detail."""
    body = response.json()
    if response.status_code != 422:
        return case.names in str(body.get("detail", ""))
    locs = [".".join(str(p) for p in e["loc"]) for e in body["detail"]]
    field = "body" if case.names == "body" else f"body.{case.names}"
    return any(loc == field or loc.startswith(field + ".") for loc in locs)


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    space = tmp_path_factory.mktemp("abuse")
    data, corpus = ingested(space, embedder)
    keys = make_keys(data, {"reader": (Role.READER, ()), "bystander": (Role.READER, ())})
    settings = Settings(
        _env_file=None,
        data_dir=data,
        corpus_dir=corpus,
        today=TODAY_STR,
        generator="extractive",
        serve_threads=2,  # torch threads are process-wide: leave the other tests theirs
        rate_limit_per_minute=0,
    )
    with TestClient(create_app(settings)) as client:
        yield client, keys


NORMAL = (SEARCH, {"query": "How long does the gateway keep prompts?", "k": 3})


def still_serves(client: TestClient | httpx.Client, key: str) -> None:
    response = client.post(NORMAL[0], json=NORMAL[1], headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    assert response.json()["hits"][0]["doc_id"] == "kaig-faq"


def send(client: TestClient | httpx.Client, case: Case, key: str) -> Any:
    """The response (an httpx one, of whichever httpx the client is built on)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    return client.post(case.path, content=body, headers=headers)


def test_absurd_deep_and_huge_bodies_get_a_4xx_naming_the_field(
    api: tuple[TestClient, dict[str, str]],
) -> None:
    """JSON nested deeper than the parser goes is a 400 about the body ("There was an error
    parsing the body": FastAPI's); everything else a 422 naming its field or a 413 naming
    KB_MAX_REQUEST_BYTES."""
    client, keys = api
    wrong: list[str] = []
    statuses: Counter[int] = Counter()
    for case in CASES:
        started = time.perf_counter()
        response = send(client, case, keys["reader"])
        took = time.perf_counter() - started
        statuses[response.status_code] += 1
        if response.status_code != case.status or not named(response, case):
            wrong.append(f"{case.name}: {response.status_code} {response.text[:300]}")
        elif took > 5:
            wrong.append(f"{case.name}: {took:.1f} s to refuse")
        still_serves(client, keys["bystander"])
    print(f"\n{len(CASES)} bodies: {dict(statuses)}")
    assert len(CASES) >= 50
    assert wrong == []


@pytest.mark.parametrize("case", UNBOUNDED, ids=lambda c: c.name)
def test_unbounded_filter_values_get_a_422_naming_the_field(
    api: tuple[TestClient, dict[str, str]], case: Case
) -> None:
    client, keys = api
    response = send(client, case, keys["reader"])
    still_serves(client, keys["bystander"])
    assert response.status_code == case.status, response.text[:200]
    assert named(response, case)


@pytest.mark.slow  # a server process of its own
def test_a_search_with_10000_tags_gets_a_422_and_the_server_survives(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """In a server process of its own: the failure is the process's death."""
    data, corpus = ingested(tmp_path, embedder)
    keys = make_keys(data, {"reader": (Role.READER, ())})
    crashing = Case(
        "10,000 tags",
        SEARCH,
        _search(filters={"tags": [f"t{i}" for i in range(10_000)]}),
        422,
        "filters.tags",
    )
    with (
        server_process(
            tmp_path, data_dir=data, corpus_dir=corpus, generator="extractive"
        ) as server,
        server.client(keys["reader"]) as client,
    ):
        try:
            response: httpx.Response | None = send(client, crashing, keys["reader"])
        except httpx.HTTPError:
            response = None
        time.sleep(0.5)
        assert server.alive(), f"the server died: exit {server.proc.returncode}"
        assert response is not None
        assert response.status_code == 422
        assert named(response, crashing)
        still_serves(client, keys["reader"])


# -- connections and floods, through a real server process -----------------------------------

PER_MINUTE, BURST = 600, 10


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[Live]:
    space = tmp_path_factory.mktemp("abuse-live")
    data, corpus = ingested(space, embedder)
    names = ("probe", "flooder", "bystander", "trickler")
    keys = make_keys(data, dict.fromkeys(names, (Role.READER, ())))
    with server_process(
        space,
        data_dir=data,
        corpus_dir=corpus,
        generator="extractive",
        rate_limit_per_minute=PER_MINUTE,
        rate_limit_burst=BURST,
    ) as server:
        yield Live(server, keys)


ATTACKS: Counter[str] = Counter()  # connection-level attacks made, by kind (printed)


def probe(live: Live) -> float:
    """One normal request by a key no attack uses; its latency."""
    with live.server.client(live.keys["probe"]) as client:
        started = time.perf_counter()
        still_serves(client, live.keys["probe"])
        return time.perf_counter() - started


def connect(live: Live) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", live.server.port), timeout=10)
    return sock


def read_response(sock: socket.socket, timeout: float = 10) -> tuple[int, bytes]:
    """Status and everything the server sent until it closed (or `timeout` passed)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and _complete(data):
                break
    except TimeoutError:
        pass
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data[9:12]), data


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def test_a_body_declared_too_large_is_refused_before_it_is_sent(live: Live) -> None:
    for declared in (MB + 1, 10**9, 10**18):
        with connect(live) as sock:
            sock.sendall(
                b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {live.keys['trickler']}\r\n".encode()
                + f"Content-Length: {declared}\r\n\r\n".encode()
            )
            status, data = read_response(sock)
            assert status == 413
            assert b"KB_MAX_REQUEST_BYTES" in data
            assert sock.recv(1) == b""  # closed: the body is never read
        ATTACKS["declared too large"] += 1
        probe(live)


def test_a_header_of_1_mb_is_refused(live: Live) -> None:
    head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MB + b"\r\n\r\n"
    with connect(live) as sock:
        sock.sendall(head)
        status, _ = read_response(sock)
    probe(live)
    assert status == 431


def test_malformed_heads_get_400s(live: Live) -> None:
    heads = {
        "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
        + bytes(range(256))
        + b"\r\n\r\n",
        "bad content-length": b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        "bad request line": b"FETCH\x00 /../../etc/passwd HTTP/9.9\r\n\r\n",
    }
    for name, head in heads.items():
        with connect(live) as sock:
            sock.sendall(head)
            status, _ = read_response(sock)
        assert 400 <= status < 500, name
        ATTACKS[name] += 1
        probe(live)


def _trickle(live: Live, payload: bytes, pause: float, stop: threading.Event) -> socket.socket:
    """Sends `payload` a byte at a time, `pause` apart, until done or `stop`."""
    sock = connect(live)

    def run() -> None:
        for i in range(len(payload)):
            if stop.is_set():
                return
            sock.sendall(payload[i : i + 1])
            time.sleep(pause)

    threading.Thread(target=run, daemon=True).start()
    return sock


def test_slow_and_silent_connections_do_not_hold_up_others(live: Live) -> None:
    baseline = statistics.median(probe(live) for _ in range(5))
    body = json.dumps({"query": "gateway retention", "k": 2}).encode()
    trickled = (
        b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {live.keys['trickler']}\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    stop = threading.Event()
    silent = [connect(live) for _ in range(100)]  # open, and never a byte
    # headers a byte every 0.2 s (never finished within the test)
    heads = [
        _trickle(live, b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 500, 0.2, stop)
        for _ in range(10)
    ]
    bodies = []
    for _ in range(BURST - 2):  # the trickler's key stays within its burst
        sock = connect(live)
        sock.sendall(trickled)
        bodies.append(_trickle_body(sock, body, 0.05, stop))
    try:
        time.sleep(1)  # every kind of slow client is mid-request now
        during = statistics.median(probe(live) for _ in range(5))
        print(
            f"\nprobe median {baseline * 1000:.0f} ms alone, {during * 1000:.0f} ms beside "
            f"{len(silent)} silent, {len(heads)} slow-header and {len(bodies)} slow-body clients"
        )
        assert during <= SLOWDOWN * baseline + SLACK_S  # a held worker adds whole seconds
        for sock, thread in bodies:  # the trickled bodies, finished, are answered
            thread.join(timeout=30)
            status, data = read_response(sock)
            assert status == 200, data[:300]
        ATTACKS["silent connection"] += len(silent)
        ATTACKS["slow headers"] += len(heads)
        ATTACKS["slow body"] += len(bodies)
    finally:
        stop.set()
        for sock in [*silent, *heads, *(s for s, _ in bodies)]:
            sock.close()
    probe(live)
    assert live.server.alive()
    assert live.server.errors() == []


def _trickle_body(
    sock: socket.socket, body: bytes, pause: float, stop: threading.Event
) -> tuple[socket.socket, threading.Thread]:
    def run() -> None:
        for i in range(len(body)):
            if stop.is_set():
                return
            sock.sendall(body[i : i + 1])
            time.sleep(pause)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return sock, thread


def test_a_body_that_stops_arriving_gets_408(live: Live) -> None:
    """Headers, half a body, then nothing: refused with 408 once nothing has come for
    `BODY_IDLE_TIMEOUT_S`, and the connection closed; meanwhile others are served."""
    body = json.dumps({"query": "gateway retention", "k": 2}).encode()
    socks = []
    for part in (b"", body[: len(body) // 2]):  # headers only; headers and half the body
        sock = connect(live)
        sock.sendall(
            b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {live.keys['trickler']}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + part
        )
        socks.append(sock)
    started = time.monotonic()
    probe(live)
    for sock in socks:
        with sock:
            status, data = read_response(sock, timeout=BODY_IDLE_TIMEOUT_S + 10)
            took = time.monotonic() - started
            assert status == 408, data[:300]
            assert b"arrived for" in data
            assert sock.recv(1) == b""  # closed
        assert BODY_IDLE_TIMEOUT_S - 1 <= took <= BODY_IDLE_TIMEOUT_S + 10
        ATTACKS["body stopped"] += 1
    probe(live)


def _flood(live: Live, key: str | None, n: int) -> tuple[Counter[int], list[httpx.Response]]:
    """`n` requests from 8 threads at once: their statuses, and the responses that were not
    a 200."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=live.server.origin, timeout=30, trust_env=False) as client:

        def one(_: int) -> httpx.Response:
            return client.post(NORMAL[0], json=NORMAL[1], headers=headers)

        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(one, range(n)))
    refused = [r for r in responses if r.status_code != 200]
    return Counter(r.status_code for r in responses), refused


def test_floods_past_the_rate_limit_stay_with_their_own_key(live: Live) -> None:
    """A key's flood is cut at its burst with 429s; floods without a key, with a malformed or
    an unknown one get 401s and are never counted against a key (api/ratelimit.py: one bucket
    per authenticated key); a bystander key still has its whole burst afterwards."""
    started = time.monotonic()
    flood, refused = _flood(live, live.keys["flooder"], 100)
    elapsed = time.monotonic() - started
    assert set(flood) == {200, 429}, flood
    assert BURST <= flood[200] <= BURST + elapsed * PER_MINUTE / 60 + 1
    ATTACKS["authenticated flood"] += 100

    for limited in refused:
        assert int(limited.headers["retry-after"]) >= 1
        assert f"key '{key_id(live.keys['flooder'])}' is over" in limited.json()["detail"]

    unknown = "kb_deadbeef_" + "A" * 43
    # the bystander's own key id with a wrong secret: counted against its bucket, this flood
    # would leave it nothing
    wrong_secret = live.keys["bystander"][:-4] + "AAAA"
    for key in (None, "not-a-key", unknown, wrong_secret):
        answers, _ = _flood(live, key, 150)
        assert answers == Counter({401: 150}), (key and key[:12], answers)
        ATTACKS["unauthenticated flood"] += 150

    with live.server.client(live.keys["bystander"]) as client:
        codes = [client.post(NORMAL[0], json=NORMAL[1]).status_code for _ in range(BURST)]
    assert codes == [200] * BURST  # its whole burst, after 700 requests of others
    probe(live)
    assert live.server.alive()
    assert live.server.errors() == []
    print(f"\nconnection-level attacks in this run: {sum(ATTACKS.values())} {dict(ATTACKS)}")
