"""Concurrency (issue 17): readers search while a sync rewrites the documents they find, and
two uploads of one file race. Real parts: the MiniLM model, a persistent Chroma store, the real
HybridRetriever (dense + BM25), the API through TestClient with an admin key.

Every version of a document carries `version N` in every sentence of every chunk, so a result
set can be checked to hold one version per document. Loops are bounded by count and time, and
the text and queries come from seeded RNGs.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.keys import KeyStore, Role
from api.settings import Settings
from index.embedding import CachedEmbedder, SentenceTransformerEmbedder
from index.hybrid import HybridRetriever
from index.keyword import KeywordIndex, Tokenizer
from index.store import ChromaStore
from ingest.sync import Ingester
from tests.conftest import markdown, write
from tests.storetools import Interrupted, InterruptingStore

TODAY = dt.date(2026, 11, 28)
TOPICS = ["invoice matching", "contract review", "model risk"]
QUERIES = [
    "how are invoices matched",
    "who reviews contracts",
    "model risk approval steps",
    "version of the matching step",
    "contract clause review step",
    "risk tiering of models",
]
ROUNDS = 10  # syncs that rewrite every document
MIN_ROUNDS = 3  # started whatever the time: on a loaded machine a sync takes 10 s or more
READERS = 2
TIME_LIMIT_S = 90  # the writer stops starting syncs after half of it
VERSION = re.compile(r"version (\d+)\b")


def _body(doc: int, version: int) -> str:
    """About six chunks: every sentence names the version, so no two versions' chunks are
    near-duplicates that retrieval would collapse into one."""
    topic = TOPICS[doc]
    parts = []
    for section in range(1, 7):
        sentences = " ".join(
            f"In version {version}, step {section}.{n} of {topic} is done by team {n}."
            for n in range(1, 16)
        )
        parts.append(f"## Step {section}\n\n{sentences}")
    return f"# {topic.title()}\n\n" + "\n\n".join(parts)


@dataclass
class Seen:
    """What the readers saw."""

    searches: int = 0
    errors: list[str] = field(default_factory=list)
    mixed: list[dict[str, Any]] = field(default_factory=list)  # result sets with two versions
    versions: dict[str, set[int]] = field(default_factory=dict)  # doc id -> versions seen
    lock: threading.Lock = field(default_factory=threading.Lock)


def _read(retriever: HybridRetriever, seed: int, done: threading.Event, seen: Seen) -> None:
    rng = random.Random(seed)
    deadline = time.monotonic() + TIME_LIMIT_S
    while not done.is_set() and time.monotonic() < deadline:
        try:
            hits = retriever.retrieve(rng.choice(QUERIES), 10, today=TODAY)
        except Exception as exc:
            with seen.lock:
                seen.errors.append(repr(exc))
            continue
        by_doc: dict[str, set[int]] = {}
        for hit in hits:
            found = {int(v) for v in VERSION.findall(hit.text)}
            by_doc.setdefault(hit.doc_id, set()).update(found)
        with seen.lock:
            seen.searches += 1
            for doc_id, versions in by_doc.items():
                seen.versions.setdefault(doc_id, set()).update(versions)
                if len(versions) != 1:
                    ids = [h.chunk_id for h in hits if h.doc_id == doc_id]
                    seen.mixed.append({"doc_id": doc_id, "versions": versions, "chunks": ids})


def test_readers_never_see_a_document_of_two_versions(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    root = tmp_path / "kb"
    store = ChromaStore.open(path=tmp_path / "chroma")
    model = CachedEmbedder(embedder)  # the readers' repeated queries are embedded once
    ingester = Ingester(store, embedder)

    def write_version(version: int) -> None:
        for doc in range(len(TOPICS)):
            write(root / "coe" / f"doc-{doc}.md", markdown(f"doc-{doc}", _body(doc, version)))

    write_version(0)
    first = ingester.sync(root)
    assert len(first.added) == len(TOPICS)
    chunks = {e["doc_id"]: e["chunks"] for e in first.added}
    assert min(chunks.values()) >= 4, chunks  # several chunks per document to mix

    seen, done = Seen(), threading.Event()
    retrievers = [
        HybridRetriever(store, model, KeywordIndex(store, None, Tokenizer()))
        for _ in range(READERS)
    ]
    readers = [
        threading.Thread(target=_read, args=(r, seed, done, seen))
        for seed, r in enumerate(retrievers)
    ]
    for reader in readers:
        reader.start()
    started = time.monotonic()
    rounds = 0
    try:
        for version in range(1, ROUNDS + 1):
            if rounds >= MIN_ROUNDS and time.monotonic() - started > TIME_LIMIT_S / 2:
                break
            write_version(version)
            report = ingester.sync(root)
            assert len(report.updated) == len(TOPICS)
            rounds += 1
    finally:
        done.set()
        for reader in readers:
            reader.join(timeout=60)
    assert not any(r.is_alive() for r in readers)
    print(f"{rounds} syncs, {seen.searches} searches, {len(seen.mixed)} mixed result sets")

    assert rounds >= MIN_ROUNDS
    assert seen.errors == []
    assert seen.searches >= 2 * rounds  # readers ran all along
    for doc in range(len(TOPICS)):  # and saw the documents change under them
        assert len(seen.versions.get(f"doc-{doc}", set())) >= 2, seen.versions
    assert seen.mixed == []


# -- after a killed run, before the next -----------------------------------------------------


@pytest.mark.parametrize("fail_at", [2, 3, 4, 7, 11])  # 4 writes per document, 3 documents
def test_a_killed_sync_leaves_readers_one_version_per_document(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, fail_at: int
) -> None:
    """A run killed between writing a document's new chunks and deleting its old ones (fail_at
    3, 7, 11) leaves both in the store until the next sync: searches and a document's chunk
    list still show one version, the one its registry record names."""
    root = tmp_path / "kb"
    store = ChromaStore.open(path=tmp_path / "chroma")
    for doc in range(len(TOPICS)):
        write(root / "coe" / f"doc-{doc}.md", markdown(f"doc-{doc}", _body(doc, 1)))
    Ingester(store, embedder).sync(root)
    for doc in range(len(TOPICS)):
        write(root / "coe" / f"doc-{doc}.md", markdown(f"doc-{doc}", _body(doc, 2)))
    with pytest.raises(Interrupted):
        Ingester(InterruptingStore(store, fail_at), embedder).sync(root)

    stored: dict[str, set[int]] = {}  # doc id -> versions its chunks in the store hold
    for _, text, md in zip(*store.all_chunks(), strict=True):
        stored.setdefault(md["doc_id"], set()).update(int(v) for v in VERSION.findall(text))
    mixed = {doc_id for doc_id, versions in stored.items() if len(versions) > 1}
    assert mixed == ({f"doc-{fail_at // 4}"} if fail_at % 4 == 3 else set())
    current = {}
    for record in store.documents():
        (current[record.doc_id],) = {
            int(v)
            for _, text, _ in store.document_chunks(record.doc_id)
            for v in VERSION.findall(text)
        }
        if record.doc_id in mixed:
            assert current[record.doc_id] == 2  # the version its record is writing

    retriever = HybridRetriever(store, embedder, KeywordIndex(store, None, Tokenizer()))
    for query in QUERIES:
        hits = retriever.retrieve(query, 10, today=TODAY)
        assert hits
        for doc_id in {h.doc_id for h in hits}:
            versions = {int(v) for h in hits if h.doc_id == doc_id for v in VERSION.findall(h.text)}
            assert versions == {current[doc_id]}, (query, doc_id, versions)


# -- two uploads of one file ------------------------------------------------------------------

UPLOAD_ROUNDS = 6


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    corpus = tmp_path / "corpus"
    write(corpus / "coe" / "other.md", markdown("other", "# Other\n\nAnother document."))
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        corpus_dir=corpus,
        today="2026-11-28",
        generator="extractive",
        serve_threads=2,
        rate_limit_per_minute=0,
    )
    keys = KeyStore(settings.keys_path)
    admin = keys.create("admin", Role.ADMIN)
    keys.close()
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {admin}"
        yield client, corpus


def _upload(client: TestClient, version: int, replace: bool) -> int:
    body = markdown("raced", _body(version % len(TOPICS), version), department="coe")
    response = client.post(
        "/v1/documents",
        files=[("files", ("raced.md", body.encode(), "text/markdown"))],
        data={"replace": json.dumps(replace)},
    )
    assert response.status_code in (200, 409), response.text
    return response.status_code


def test_two_uploads_of_one_file_store_one_version(api: tuple[TestClient, Path]) -> None:
    client, corpus = api
    statuses: Counter[int] = Counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for n in range(UPLOAD_ROUNDS):
            versions = (2 * n + 1, 2 * n + 2)
            barrier = threading.Barrier(2)
            replace = n > 0  # the first race uploads a new file, the others replace it

            def race(
                version: int, barrier: threading.Barrier = barrier, replace: bool = replace
            ) -> int:
                barrier.wait(timeout=30)
                return _upload(client, version, replace)

            codes = dict(zip(versions, pool.map(race, versions), strict=True))
            statuses.update(codes.values())
            assert 200 in codes.values(), codes
            raced = [d for d in client.get("/v1/documents").json() if d["doc_id"] == "raced"]
            assert len(raced) == 1
            detail = client.get("/v1/documents/raced").json()
            texts = [c["text"] for c in detail["chunk_list"]]
            assert len(texts) == detail["chunks"] == raced[0]["chunks"]
            stored = {int(v) for t in texts for v in VERSION.findall(t)}
            assert len(stored) == 1, stored  # one version, whole
            (version,) = stored
            assert codes[version] == 200  # an upload that succeeded
            on_disk = (corpus / "coe" / "raced.md").read_text(encoding="utf-8")
            assert set(VERSION.findall(on_disk)) == {str(version)}  # the file it came from
            assert not list(corpus.glob(".kb-upload-*"))  # no staging folder left behind
    print(f"upload statuses over {UPLOAD_ROUNDS} races: {dict(statuses)}")
    assert statuses[409] >= 1  # the uploads did overlap
