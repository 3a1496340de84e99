"""Slow and stalled clients (issue 17, item 6): a stream client that reads slowly or stops
reading must not hold up other users' answers.

- Through a real `kb serve` process on loopback (extractive generator in the fast tier, the
  local model in the slow tier): raw sockets with a small receive buffer send streamed requests
  (`POST /v1/ask/stream`, `POST /v1/chat/completions` with `stream: true`) and never read. One
  sends one request; one pipelines enough of them that the server's writes to it block (its
  kernel send queue holds bytes the client's closed window refuses). While they are stalled,
  other keys' `/v1/ask` and `/v1/search` are timed against an unstalled baseline taken in the
  same test; then the stalled sockets are reset and the server keeps serving, logs no error,
  and its query log holds what it served.
- With the real local model at the level of the Assistant (slow tier): stream A is started, one
  token taken, and A left unread; answer B completes within A's and B's own unstalled times,
  and A can still be drained (its generation ran on meanwhile) or closed (generation stops).

The server process and its store come from tests/reliability/server_process.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import statistics
import struct
import termios
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.assembly import (
    build_answer_embedder,
    build_assistant,
    build_generator,
    build_ingester,
    build_retriever,
    build_store,
)
from api.keys import Role
from api.settings import Settings
from assistant.service import Answer, Assistant, Event, Final, Token
from index.embedding import SentenceTransformerEmbedder
from index.filters import Principal
from tests.conftest import TODAY_STR
from tests.reliability.server_process import (
    REPO,
    SLACK_S,
    SLOWDOWN,
    Served,
    answers_logged,
    ingested,
    make_keys,
    server_process,
)
from tests.samples import write_service_base

# -- sockets that stop reading ----------------------------------------------------------------


STREAMS = {
    "ask-stream": ("/v1/ask/stream", "ask/stream"),
    "chat-stream": ("/v1/chat/completions", "chat/stream"),
}


def stream_body(path: str, question: str) -> dict[str, Any]:
    if path == "/v1/ask/stream":
        return {"question": question}
    return {"model": "kb", "stream": True, "messages": [{"role": "user", "content": question}]}


def raw_request(path: str, body: dict[str, Any], key: str) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def stalled_socket(port: int, payload: bytes, rcvbuf: int = 4096) -> socket.socket:
    """A client that sends `payload` and never reads, with a small receive buffer and a small
    segment size, both set before connecting: the window it offers stays small, and the
    server's kernel sizes its send buffer from the segment size (loopback's 64 KiB segments
    would let it queue megabytes)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1024)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(payload)
    return sock


def unread(sock: socket.socket) -> int:
    """Bytes the kernel holds for `sock` that it has not read (FIONREAD)."""
    buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return int(struct.unpack("i", buf)[0])


def server_send_queue(server_port: int, client: socket.socket | int) -> int | None:
    """Bytes the server's end of `client`'s connection (a socket or its port) has written but
    the client has not acknowledged (tx_queue of /proc/net/tcp); None if that end is gone."""
    client_port = client if isinstance(client, int) else client.getsockname()[1]
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[4].split(":")[0], 16)
    return None


def reset(sock: socket.socket) -> None:
    """Close abruptly: RST instead of FIN, the unread bytes thrown away."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@dataclass(frozen=True)
class Stall:
    unread: int  # bytes the client holds unread
    queued: int  # bytes the server's end holds unsent


def wait_stalled(port: int, sock: socket.socket, timeout: float = 30) -> Stall:
    """Wait until nothing moves on `sock`'s connection for a second (the server has written
    all it will until the client reads) and return what is held at each end."""
    last: tuple[int, int | None] | None = None
    steady_since = time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = (unread(sock), server_send_queue(port, sock))
        if now != last:
            last, steady_since = now, time.monotonic()
        elif now[0] > 0 and time.monotonic() - steady_since >= 1.0:
            return Stall(now[0], now[1] or 0)
        time.sleep(0.1)
    pytest.fail(f"the connection never settled: {last}")


def timed(client: httpx.Client, path: str, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    response = client.post(path, json=body)
    took = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return took


OTHERS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/ask", {"question": "How long does the KAIG gateway keep prompts and answers?"}),
    ("/v1/search", {"query": "chatbot deflection results", "k": 5}),
]


def latencies(client: httpx.Client, rounds: int) -> dict[str, list[float]]:
    """`rounds` of one /v1/ask and one /v1/search each, timed by route."""
    seen: dict[str, list[float]] = {path: [] for path, _ in OTHERS}
    for _ in range(rounds):
        for path, body in OTHERS:
            seen[path].append(timed(client, path, body))
    return seen


# -- fast tier: the extractive generator behind a real server ---------------------------------

QUESTION_A = "How much did the Ask Kestrel chatbot deflect?"
ROUNDS = 6


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[Served]:
    space = tmp_path_factory.mktemp("stalled")
    data, corpus = ingested(space, embedder)
    keys = make_keys(
        data,
        {
            "single": (Role.READER, ()),
            "pipelined": (Role.READER, ()),
            "other": (Role.READER, ("finance",)),
        },
    )
    with server_process(
        space,
        data_dir=data,
        corpus_dir=corpus,
        generator="extractive",
        rate_limit_per_minute=0,  # the pipelined client sends a hundred requests at once
    ) as server:
        yield Served(server, keys)


def _one_stream_size(served: Served, path: str) -> int:
    with served.server.client(served.keys["other"]) as client:
        response = client.post(path, json=stream_body(path, QUESTION_A))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    return len(response.content)


def _pipelined_stall(served: Served, path: str, size: int) -> tuple[socket.socket, Stall, int]:
    """A client that pipelines enough stream requests that their answers outgrow every buffer
    on the way (its own, the server's kernel send queue, uvicorn's 64 KiB write buffer) several
    times, few enough that the requests fit the server's receive buffer, and reads nothing."""
    count = max(40, 800_000 // size)
    one = raw_request(path, stream_body(path, QUESTION_A), served.keys["pipelined"])
    sock = stalled_socket(served.server.port, one * count)
    blocked = wait_stalled(served.server.port, sock)
    # The server's end holds bytes it cannot send, and far less than was asked for has moved:
    # the server is waiting for this client to read.
    assert blocked.unread > 0
    assert blocked.queued > 0
    assert blocked.unread + blocked.queued < count * size / 4
    return sock, blocked, count


@pytest.mark.parametrize("route", sorted(STREAMS))
def test_stalled_stream_clients_do_not_hold_up_other_users(served: Served, route: str) -> None:
    server, keys = served.server, served.keys
    data = server.settings.data_dir
    path, logged_as = STREAMS[route]
    size = _one_stream_size(served, path)
    with server.client(keys["other"]) as other:
        latencies(other, 1)  # warm
        baseline = latencies(other, ROUNDS)
    asked_before = answers_logged(data, keys["other"], "ask")
    single_log = answers_logged(data, keys["single"], logged_as)
    piped_log = answers_logged(data, keys["pipelined"], logged_as)
    errors_before = len(server.errors())

    one = raw_request(path, stream_body(path, QUESTION_A), keys["single"])
    single = stalled_socket(server.port, one)
    pipelined, blocked, count = _pipelined_stall(served, path, size)
    ports = [single.getsockname()[1], pipelined.getsockname()[1]]
    try:
        held = wait_stalled(server.port, single)
        assert held.unread > 0  # its answer arrived and lies unread
        assert single.recv(64, socket.MSG_PEEK).startswith(b"HTTP/1.1 200")
        with server.client(keys["other"]) as other:
            stalled = latencies(other, ROUNDS)
        # Still stalled after the others were served: the client read nothing, and what the
        # server wrote is still held (a loaded server may have queued more after a pause).
        after = wait_stalled(server.port, pipelined)
        assert after.unread >= blocked.unread
        assert after.queued >= blocked.queued > 0
        assert unread(single) == held.unread
    finally:
        reset(single)
    try:
        report = {
            p: (statistics.median(baseline[p]), statistics.median(stalled[p])) for p in baseline
        }
        print(
            f"\n{route}: median s (unstalled, stalled) {report}; {count} pipelined of "
            f"{size} bytes; stalled {held} {blocked}"
        )
        for p, (before, during) in report.items():
            assert during <= SLOWDOWN * before + SLACK_S, (p, before, during)

        # After a reset of the single stream: the server serves, nothing erred, and the query
        # log holds the answer it served to the stalled client, once.
        with server.client(keys["other"]) as other:
            timed(other, *OTHERS[0])
        assert server.errors()[errors_before:] == []
        assert answers_logged(data, keys["single"], logged_as) == single_log + 1
    finally:
        reset(pipelined)
    # And after the pipelined one's: the server still serves, its ends of both connections are
    # closed, and it logged the answers it wrote before the client stalled, not all it was sent.
    with server.client(keys["other"]) as other:
        timed(other, *OTHERS[1])
    deadline = time.monotonic() + 10
    while any(server_send_queue(server.port, p) is not None for p in ports):
        assert time.monotonic() < deadline, "the server kept a reset connection open"
        time.sleep(0.1)
    assert server.alive()
    assert answers_logged(data, keys["other"], "ask") == asked_before + ROUNDS + 1
    served_piped = answers_logged(data, keys["pipelined"], logged_as) - piped_log
    assert 0 < served_piped < count


@pytest.mark.xfail(
    strict=False,  # the race it shows depends on timing: it may not reproduce
    reason="uvicorn 0.55's httptools protocol marks only the last pipelined request as "
    "disconnected when the client resets (httptools_impl.py connection_lost, `self.cycle` "
    "being the pipelined one), so the response blocked in flow control resumes and writes to "
    "the closed transport: RuntimeError, logged as an unhandled error of the stream route",
)
def test_resetting_a_blocked_pipelining_client_logs_no_error(served: Served) -> None:
    path = STREAMS["ask-stream"][0]
    errors_before = len(served.server.errors())
    sock, _, _ = _pipelined_stall(served, path, _one_stream_size(served, path))
    reset(sock)
    with served.server.client(served.keys["other"]) as other:
        timed(other, *OTHERS[1])
    time.sleep(0.5)
    assert served.server.errors()[errors_before:] == []


# -- slow tier: the real local model ----------------------------------------------------------

EMPLOYEE = Principal.of()
LONG_A = "How long does the KAIG gateway keep prompts and answers, and who owns its FAQ?"
SHORT_B = "How much did the Ask Kestrel chatbot deflect?"


@pytest.fixture(scope="module")
def local_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("local-data"),
        generator="local",
        answer_judge="off",
        today=TODAY_STR,
        llm_replies_kept=0,  # every answer generated: the same questions are asked again
    )
    if not settings.llm_model_path.is_file():
        pytest.fail(f"{settings.llm_model_path} missing: `make install` assembles it")
    return settings


@pytest.fixture(scope="module")
def local_assistant(
    local_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    embedder: SentenceTransformerEmbedder,
) -> Assistant:
    corpus = write_service_base(tmp_path_factory.mktemp("local-kb"))
    store = build_store(local_settings)
    build_ingester(local_settings, store, embedder).sync(corpus)
    answering = build_answer_embedder(local_settings, embedder)
    retriever = build_retriever(local_settings, store, answering)
    generator = build_generator(local_settings, answering)
    assert generator.name == "local"
    return build_assistant(local_settings, retriever, answering, generator)


def _drain(events: Iterator[Event]) -> tuple[Answer, int]:
    tokens, final = 0, None
    for event in events:
        if isinstance(event, Token):
            tokens += 1
        elif isinstance(event, Final):
            final = event.answer
    assert final is not None
    return final, tokens


def _timed_answer(assistant: Assistant, question: str) -> tuple[Answer, int, float]:
    started = time.perf_counter()
    answer, tokens = _drain(assistant.stream(question, principal=EMPLOYEE))
    return answer, tokens, time.perf_counter() - started


def _first_token(events: Iterator[Event]) -> None:
    for event in events:
        if isinstance(event, Token):
            return
    pytest.fail("the stream ended before its first token")


def _in_thread(work: Any, timeout: float) -> tuple[Any, float]:
    """`work()` in another thread, with its result and duration; fails after `timeout`."""
    out: list[Any] = []
    started = time.perf_counter()
    thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"B did not finish within {timeout:.0f} s while A was stalled")
    assert out, "B raised"
    return out[0], time.perf_counter() - started


@pytest.mark.slow
def test_a_stalled_local_model_stream_does_not_block_the_next_answer(
    local_assistant: Assistant,
) -> None:
    _timed_answer(local_assistant, SHORT_B)  # load the model, prime the prompt cache
    answer_a, tokens_a, alone_a = _timed_answer(local_assistant, LONG_A)
    answer_b, _, alone_b = _timed_answer(local_assistant, SHORT_B)
    assert tokens_a > 5
    assert not answer_a.refused

    stream_a = local_assistant.stream(LONG_A, principal=EMPLOYEE)
    _first_token(stream_a)  # A has begun; its reader now stops
    bound = alone_a + alone_b + 0.5 * (alone_a + alone_b) + 5
    stalled_b, took_b = _in_thread(
        lambda: local_assistant.ask(SHORT_B, principal=EMPLOYEE), timeout=bound
    )
    print(
        f"\nlocal model: A alone {alone_a:.1f} s, B alone {alone_b:.1f} s, B with A stalled "
        f"{took_b:.1f} s (bound {bound:.1f} s)"
    )
    assert stalled_b.answer == answer_b.answer
    assert took_b <= bound

    # A's generation ran on while its reader was stalled: the rest of it is already there.
    started = time.perf_counter()
    drained, rest = _drain(stream_a)
    assert rest == tokens_a - 1
    assert time.perf_counter() - started < alone_a / 2
    assert drained.answer == answer_a.answer


@pytest.mark.slow
def test_a_closed_local_model_stream_stops_generating(local_assistant: Assistant) -> None:
    _, tokens_a, alone_a = _timed_answer(local_assistant, LONG_A)
    _, _, alone_b = _timed_answer(local_assistant, SHORT_B)
    assert tokens_a > 5
    stream_a = local_assistant.stream(LONG_A, principal=EMPLOYEE)
    _first_token(stream_a)
    assert isinstance(stream_a, types.GeneratorType)
    stream_a.close()  # a client that goes away: the model stops at its next token
    _, took_b = _in_thread(
        lambda: local_assistant.ask(SHORT_B, principal=EMPLOYEE), timeout=alone_a + alone_b + 30
    )
    print(
        f"\nlocal model: A alone {alone_a:.1f} s, B alone {alone_b:.1f} s, B after A closed "
        f"{took_b:.1f} s"
    )
    assert took_b < alone_b + 0.5 * alone_a  # B did not wait for the rest of A


@pytest.fixture(scope="module")
def local_server(
    local_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    embedder: SentenceTransformerEmbedder,
) -> Iterator[Served]:
    space = tmp_path_factory.mktemp("stalled-local")
    data, corpus = ingested(space, embedder)
    keys = make_keys(data, {"stalled": (Role.READER, ()), "other": (Role.READER, ())})
    with server_process(
        space,
        data_dir=data,
        corpus_dir=corpus,
        generator="local",
        llm_model_path=(REPO / local_settings.llm_model_path).resolve(),
        llm_replies_kept=0,
        rate_limit_per_minute=0,
    ) as server:
        yield Served(server, keys)


def _stream_seconds(client: httpx.Client, question: str) -> float:
    started = time.perf_counter()
    with client.stream("POST", "/v1/ask/stream", json={"question": question}) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    assert "event: final" in text
    return time.perf_counter() - started


# The same through a kb serve process with the local model: about ten minutes on two cores, so
# it runs on request (KB_LONG_TESTS=1); the in-process tests above cover the model lock, and the
# fast tier covers the server's side with every stream route.
@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("KB_LONG_TESTS") != "1", reason="about 10 minutes: set KB_LONG_TESTS=1"
)
def test_a_stalled_stream_client_of_the_local_model_server(local_server: Served) -> None:
    server, keys = local_server.server, local_server.keys
    with server.client(keys["other"], timeout=300) as other:
        timed(other, "/v1/ask", {"question": SHORT_B})  # load the model
        alone_a = _stream_seconds(other, LONG_A)
        alone_b = timed(other, "/v1/ask", {"question": SHORT_B})
        search = timed(other, *OTHERS[1])
        sock = stalled_socket(
            server.port, raw_request("/v1/ask/stream", {"question": LONG_A}, keys["stalled"])
        )
        try:
            held = wait_stalled(server.port, sock, timeout=alone_a + 60)
            assert held.unread > 0
            assert sock.recv(64, socket.MSG_PEEK).startswith(b"HTTP/1.1 200")
            bound = 1.5 * (alone_a + alone_b) + 5
            took_b = timed(other, "/v1/ask", {"question": SHORT_B})
            took_search = timed(other, *OTHERS[1])
            # still not read: what the client holds only grew (the model's later tokens)
            assert unread(sock) >= held.unread
        finally:
            reset(sock)
        print(
            f"\nlocal server: A alone {alone_a:.1f} s, B alone {alone_b:.1f} s, B with A "
            f"stalled {took_b:.1f} s; search {search:.2f} s, with A stalled {took_search:.2f} s"
        )
        assert took_b <= bound
        assert took_search <= SLOWDOWN * search + SLACK_S
        timed(other, *OTHERS[1])  # served after the reset
    assert server.alive()
    assert server.errors() == []
    assert answers_logged(server.settings.data_dir, keys["stalled"], "ask/stream") == 1
