"""The same code against a real `chroma run` server: the shared, multi-process deployment.
Two ingesters in two "processes" (clients) see each other's writes through the generation."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from index.embedding import SentenceTransformerEmbedder
from index.errors import StoreError
from index.hybrid import HybridRetriever
from index.keyword import KeywordIndex, Tokenizer
from index.store import ChromaServer, ChromaStore
from ingest.sync import Ingester
from tests.conftest import free_port, markdown, write
from tests.storetools import assert_consistent

CHROMA = Path(sys.executable).parent / "chroma"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    folder = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen(
        [str(CHROMA), "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                ChromaStore.open(path=None, server=ChromaServer("127.0.0.1", port)).heartbeat()
                break
            except Exception:
                time.sleep(0.3)
        else:
            pytest.fail("chroma run did not start within 60 s")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_ingest_and_search_through_a_chroma_server(
    server: int, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    write(
        tmp_path / "legal" / "clausecheck.md",
        markdown("clausecheck", "# ClauseCheck\n\nClauseWise flags indemnity clauses for review."),
    )
    writer = ChromaStore.open(path=None, server=ChromaServer("127.0.0.1", server))
    reader = ChromaStore.open(path=None, server=ChromaServer("127.0.0.1", server))
    seen = reader.generation()

    report = Ingester(writer, embedder).sync(tmp_path)
    assert [e["doc_id"] for e in report.added] == ["clausecheck"]
    assert reader.generation() != seen  # another client notices the change
    keyword = KeywordIndex(reader, None, Tokenizer())
    retriever = HybridRetriever(reader, embedder, keyword)
    hits = retriever.retrieve("who flags indemnity clauses", 3, today=dt.date(2026, 11, 28))
    assert hits[0].doc_id == "clausecheck"
    assert hits[0].keyword_score is not None  # the BM25 index saw the other client's write
    assert_consistent(reader)

    again = Ingester(reader, embedder).sync(tmp_path)
    assert [e["doc_id"] for e in again.unchanged] == ["clausecheck"]


class RecordingProxy:
    """A loopback TCP relay in front of the server that keeps every byte clients send: what a
    gateway in front of Chroma would see."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.sent = bytearray()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if record:
                    self.sent.extend(data)
                sink.sendall(data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()


@pytest.mark.parametrize(
    ("header", "sent"),
    [
        ("Authorization", b"authorization: Bearer s3cret-t0ken"),
        ("X-Chroma-Token", b"x-chroma-token: s3cret-t0ken"),
    ],
)
def test_the_auth_token_goes_with_every_request_to_the_server(
    server: int, header: str, sent: bytes
) -> None:
    proxy = RecordingProxy(server)
    try:
        address = ChromaServer(
            "127.0.0.1", proxy.port, auth_token="s3cret-t0ken", auth_header=header
        )
        store = ChromaStore.open(path=None, server=address)
        store.heartbeat()
        store.generation()
    finally:
        proxy.close()
    requests = bytes(proxy.sent).lower().split(b"\r\n\r\n")
    heads = [r for r in requests if r.startswith((b"get ", b"post ", b"put ", b"delete "))]
    assert len(heads) >= 3  # heartbeat, collections, generation
    assert all(sent.lower() in h for h in heads)
    assert "s3cret" not in repr(address)  # never in a log line that prints the settings


def test_tls_to_a_plain_server_fails_naming_the_server(server: int) -> None:
    with pytest.raises(StoreError, match=rf"https://127\.0\.0\.1:{server}"):
        ChromaStore.open(path=None, server=ChromaServer("127.0.0.1", server, ssl=True)).heartbeat()
