"""The same code against a real `chroma run` server: the shared, multi-process deployment.
Two ingesters in two "processes" (clients) see each other's writes through the generation."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from index.embedding import SentenceTransformerEmbedder
from index.hybrid import HybridRetriever
from index.keyword import KeywordIndex, Tokenizer
from index.store import ChromaStore
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
                ChromaStore.open(path=None, host="127.0.0.1", port=port).heartbeat()
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
    writer = ChromaStore.open(path=None, host="127.0.0.1", port=server)
    reader = ChromaStore.open(path=None, host="127.0.0.1", port=server)
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
