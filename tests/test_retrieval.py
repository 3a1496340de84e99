"""Hybrid retrieval over a real store: access control and filters on every path, freshness,
neighbours, and a keyword index that never goes stale with respect to the collection."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from index.embedding import SentenceTransformerEmbedder
from index.filters import ADMIN, Principal, SearchFilters
from index.hybrid import HybridRetriever, RetrievalOptions
from index.keyword import KeywordIndex, Tokenizer
from index.store import ChromaStore
from ingest.sync import Ingester
from tests.conftest import drop_store, markdown, new_store, write

TODAY = dt.date(2026, 11, 28)
MODES = ["hybrid", "dense", "keyword"]
FINANCE = Principal.of("finance")


def _corpus(root: Path) -> Path:
    docs = {
        "ap-review": (
            "finance",
            "all",
            "approved",
            "2026-06-01",
            "# AP review\n\n## Outcome\n\nTouchless invoice matching rose to 81% "
            "with DocuSift.\n\n## Costs\n\nThe project cost GBP 212,000.\n",
        ),
        "ap-prices": (
            "finance",
            "finance",
            "approved",
            "2026-06-01",
            "# DocuSift prices\n\nDocuSift charges GBP 0.045 per invoice page "
            "under contract DS-4471.\n",
        ),
        "cs-bot": (
            "customer_service",
            "all",
            "approved",
            "2026-06-01",
            "# Ask Kestrel\n\nThe chatbot deflects 34% of contacts.\n",
        ),
        "intake-v1": (
            "coe",
            "all",
            "superseded",
            "2024-01-01",
            "# Intake v1\n\nSubmit form AI-01; triage takes 15 working days.\n",
        ),
        "intake-v2": (
            "coe",
            "all",
            "approved",
            "2026-06-01",
            "# Intake v2\n\nSubmit form AI-01; triage takes 10 working days.\n",
        ),
        "retention-old": (
            "it",
            "all",
            "approved",
            "2024-01-01",
            "# Retention FAQ\n\nPrompts are kept for 30 days and then deleted "
            "by the gateway automatically.\n",
        ),
        "retention-new": (
            "coe",
            "all",
            "approved",
            "2026-06-01",
            "# Retention policy\n\nPrompts are kept for 30 days and then deleted "
            "by the gateway automatically.\n",
        ),
    }
    for doc_id, (dept, access, status, reviewed, body) in docs.items():
        write(
            root / dept / f"{doc_id}.md",
            markdown(
                doc_id, body, doc_type="faq", access=access, status=status, last_reviewed=reviewed
            ),
        )
    long_body = "# Handbook\n\n" + "\n\n".join(
        f"## Part {i}\n\n" + f"Paragraph {i} explains rule {i} of the handbook in detail. " * 12
        for i in range(1, 9)
    )
    write(root / "hr" / "handbook.md", markdown("handbook", long_body, doc_type="policy"))
    return root


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    chroma_client: Any,
    embedder: SentenceTransformerEmbedder,
) -> Iterator[tuple[ChromaStore, dict[str, HybridRetriever]]]:
    store = new_store(chroma_client)
    Ingester(store, embedder).sync(_corpus(tmp_path_factory.mktemp("kb")))
    keyword = KeywordIndex(store, None, Tokenizer())
    retrievers = {
        mode: HybridRetriever(store, embedder, keyword, RetrievalOptions(mode=mode))  # type: ignore[arg-type]
        for mode in MODES
    }
    yield store, retrievers
    drop_store(chroma_client, store)


def _ids(hits: list[Any]) -> list[str]:
    return [h.doc_id for h in hits]


@pytest.mark.parametrize("mode", MODES)
def test_restricted_documents_reach_only_their_group(world: Any, mode: str) -> None:
    _, retrievers = world
    query = "DocuSift price per invoice page contract DS-4471"
    anyone = retrievers[mode].retrieve(query, 10, today=TODAY)
    assert "ap-prices" not in _ids(anyone)
    assert "ap-prices" not in _ids(
        retrievers[mode].retrieve(query, 10, today=TODAY, principal=Principal.of("legal"))
    )
    assert _ids(retrievers[mode].retrieve(query, 1, today=TODAY, principal=FINANCE)) == [
        "ap-prices"
    ]
    assert "ap-prices" in _ids(retrievers[mode].retrieve(query, 3, today=TODAY, principal=ADMIN))


@pytest.mark.parametrize("mode", MODES)
def test_superseded_documents_are_out_unless_asked_for(world: Any, mode: str) -> None:
    _, retrievers = world
    query = "how many working days does AI-01 triage take"
    default = _ids(retrievers[mode].retrieve(query, 10, today=TODAY))
    assert "intake-v2" in default
    assert "intake-v1" not in default
    everything = retrievers[mode].retrieve(
        query, 10, today=TODAY, filters=SearchFilters(include_superseded=True)
    )
    assert "intake-v1" in _ids(everything)


@pytest.mark.parametrize("mode", MODES)
def test_filters_are_exact_and_results_sorted_and_unique(world: Any, mode: str) -> None:
    _, retrievers = world
    hits = retrievers[mode].retrieve(
        "invoice matching chatbot handbook rule",
        10,
        today=TODAY,
        filters=SearchFilters.build(department=["finance", "hr"]),
        principal=ADMIN,
    )
    assert hits
    assert {h.department for h in hits} <= {"finance", "hr"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len({h.chunk_id for h in hits}) == len(hits)


def test_keyword_path_finds_an_exact_identifier(world: Any) -> None:
    _, retrievers = world
    hit = retrievers["hybrid"].retrieve("DS-4471", 1, today=TODAY, principal=FINANCE)[0]
    assert hit.doc_id == "ap-prices"
    assert hit.keyword_score is not None


def test_stale_copy_of_the_same_text_yields_to_the_current_one(world: Any) -> None:
    _, retrievers = world
    hits = retrievers["hybrid"].retrieve("how long are prompts kept", 5, today=TODAY)
    ids = _ids(hits)
    assert "retention-new" in ids
    assert "retention-old" not in ids  # the same paragraph, past its review date
    assert not hits[ids.index("retention-new")].is_stale


def test_stale_only_filter_and_freshness_flags(world: Any) -> None:
    _, retrievers = world
    hits = retrievers["dense"].retrieve(
        "prompts kept", 5, today=TODAY, filters=SearchFilters(stale=True)
    )
    assert _ids(hits) == ["retention-old"]
    assert hits[0].is_stale
    assert hits[0].review_date == "2024-06-29"


def test_neighbours_give_the_surrounding_text(world: Any) -> None:
    store, retrievers = world
    hit = retrievers["hybrid"].retrieve("rule 4 of the handbook", 1, today=TODAY, neighbors=1)[0]
    assert hit.doc_id == "handbook"
    chunks = [text for _, text, _ in store.document_chunks("handbook")]
    assert hit.context is not None
    assert hit.text in hit.context
    assert len(hit.context) > len(hit.text)
    assert hit.context.count(hit.text) == 1
    assert len(chunks) > 2


def test_bad_parameters(world: Any) -> None:
    from index.errors import InvalidRequestError

    _, retrievers = world
    with pytest.raises(InvalidRequestError, match="'k'"):
        retrievers["hybrid"].retrieve("x", 0, today=TODAY)
    with pytest.raises(InvalidRequestError, match="'query'"):
        retrievers["hybrid"].retrieve("  ", 3, today=TODAY)


def test_keyword_index_follows_changes_made_by_another_process(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    data, docs = tmp_path / "data", tmp_path / "docs"
    write(docs / "coe" / "a.md", markdown("a", "# A\n\nThe gateway is called KAIG."))
    store = ChromaStore.open(path=data / "chroma")
    Ingester(store, embedder).sync(docs)
    folder = data / "bm25" / "kb_chunks"
    retriever = HybridRetriever(
        store, embedder, KeywordIndex(store, folder, Tokenizer()), RetrievalOptions(mode="keyword")
    )
    assert _ids(retriever.retrieve("KAIG", 5, today=TODAY)) == ["a"]

    write(docs / "coe" / "b.md", markdown("b", "# B\n\nZephyrine is the new codename."))
    kb = Path(sys.executable).parent / "kb"
    env = {**os.environ, "KB_DATA_DIR": str(data)}
    done = subprocess.run(
        [str(kb), "ingest", str(docs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _ids(retriever.retrieve("zephyrine codename", 5, today=TODAY)) == ["b"]

    reloaded = KeywordIndex(store, folder, Tokenizer())
    assert reloaded._load(store.generation()) is not None  # persisted at this generation
    assert set(reloaded.current().ids) == set(store.all_chunks()[0])


def test_dense_metadata_from_the_keyword_copy_or_the_store_gives_the_same_hits(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dense path reads its candidates' metadata from the keyword index's copy, and from
    the store for a chunk the copy does not hold yet: either way, the same hits and facets."""
    _, retrievers = world
    retriever = retrievers["dense"]
    queries = ["DocuSift price per invoice page", "how long are prompts kept", "intake triage"]
    for principal in (ADMIN, FINANCE, Principal()):
        copied = [
            retriever.retrieve_with_facets(q, 5, today=TODAY, principal=principal) for q in queries
        ]
        read = {h.chunk_id for r in copied for h in r.hits}
        assert read  # the event first: there were hits to compare
        with monkeypatch.context() as patched:
            patched.setattr(KeywordIndex, "metadata", lambda self, ids: {})  # copy lags
            stored = [
                retriever.retrieve_with_facets(q, 5, today=TODAY, principal=principal)
                for q in queries
            ]
        assert [r.hits for r in stored] == [r.hits for r in copied]
        assert [r.facets for r in stored] == [r.facets for r in copied]


def test_nearest_chunks_are_the_exact_ones_in_a_store_of_an_earlier_version(
    tmp_path: Path,
) -> None:
    """A store made with Chroma's default search breadth (what earlier versions wrote) is
    widened when opened, and its nearest chunks are then the exact nearest ones: the same
    sources for a question in every process, before and after a restart."""
    import chromadb
    import numpy as np

    from index.store import CHUNKS_COLLECTION, SEARCH_EF

    client = chromadb.PersistentClient(path=str(tmp_path))
    client.create_collection(
        CHUNKS_COLLECTION,
        configuration={"hnsw": {"space": "cosine", "ef_search": 10}},
        embedding_function=None,
    )
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(3000, 64)).astype(np.float32)  # no structure: hard for HNSW
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = ChromaStore.open(path=tmp_path)
    assert store.chunks.configuration_json["hnsw"]["ef_search"] == SEARCH_EF
    ids = [f"doc:abc:{i:04d}" for i in range(len(vectors))]
    store.upsert_chunks(ids, vectors, ["text"] * len(ids), [{"doc_id": "doc"}] * len(ids))
    missed = 0
    for query in vectors[:40] + 0.1 * rng.normal(size=(40, 64)).astype(np.float32):
        query /= np.linalg.norm(query)
        exact = {ids[i] for i in np.argsort(-(vectors @ query))[:50]}
        missed += len(exact - {cid for cid, _ in store.nearest(query, 50)})
    assert missed == 0


class _Vectors:
    """Embeds a query text to the vector stored under it (the test sets them)."""

    def __init__(self) -> None:
        self.by_text: dict[str, Any] = {}

    def embed(self, texts: Any) -> Any:
        import numpy as np

        return np.stack([self.by_text[t] for t in texts])


def test_a_widened_unfiltered_search_returns_what_the_filtered_one_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dense path reads the nearest chunks unfiltered and keeps the allowed ones when the
    clause admits enough of them (it is far faster than Chroma's filtered search on a large
    store): the same chunks, in the same order, as the filtered search; and when too few
    nearest ones are allowed, the filtered search runs after all."""
    import numpy as np

    from index.filters import build_where

    rng = np.random.default_rng(11)
    departments = ["finance", "hr", "it", "legal", "sales", "coe", "marketing", "ops"]
    vectors = rng.normal(size=(4000, 32)).astype(np.float32)
    finance = np.array([departments[(i // 10) % 8] == "finance" for i in range(len(vectors))])
    vectors[finance, 0] = -np.abs(vectors[finance, 0]) - 2  # finance lies away from +x
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = ChromaStore.open(path=tmp_path)
    ids = [f"d{i // 10}:abc:{i % 10:04d}" for i in range(len(vectors))]
    metadatas = [
        {"doc_id": f"d{i // 10}", "department": departments[(i // 10) % 8], "access": ["all"]}
        for i in range(len(vectors))
    ]
    store.upsert_chunks(ids, vectors, [f"chunk {i}" for i in range(len(ids))], metadatas)
    queries = _Vectors()
    keyword = KeywordIndex(store, None, Tokenizer())
    widened = HybridRetriever(store, queries, keyword, RetrievalOptions(mode="dense"))  # type: ignore[arg-type]
    calls: list[Any] = []
    nearest = store.nearest

    def recorded(embedding: Any, k: int, where: Any = None) -> Any:
        calls.append(where)
        return nearest(embedding, k, where)

    monkeypatch.setattr(store, "nearest", recorded)
    n = widened.options.candidates
    for q in range(20):
        queries.by_text[f"q{q}"] = rng.normal(size=32).astype(np.float32)
        department = departments[1 + q % 7]  # finance is left for the last case
        where = build_where(SearchFilters(departments=(department,)), ADMIN, TODAY)
        calls.clear()
        got = [row[0] for row in widened._dense(f"q{q}", n, where)]
        assert calls == [None]  # one unfiltered search sufficed
        assert got == [cid for cid, _ in nearest(queries.by_text[f"q{q}"], n, where)]

    # A query pointing away from finance, filtered to finance: none of its nearest chunks are
    # allowed, and the filtered search runs.
    queries.by_text["away"] = np.eye(32, dtype=np.float32)[0]
    where = build_where(SearchFilters(departments=("finance",)), ADMIN, TODAY)
    calls.clear()
    got = [row[0] for row in widened._dense("away", n, where)]
    assert calls == [None, None, where]  # widened, widened to the limit, filtered
    assert got == [cid for cid, _ in nearest(queries.by_text["away"], n, where)]
    assert len(got) == n

    # Between the two: queries turning away from finance; some need the second, wider read.
    tries: list[int] = []
    for t in np.linspace(0.0, 1.0, 21):
        query = t * np.eye(32, dtype=np.float32)[0] + (1 - t) * rng.normal(size=32)
        queries.by_text[f"t{t}"] = (query / np.linalg.norm(query)).astype(np.float32)
        calls.clear()
        got = [row[0] for row in widened._dense(f"t{t}", n, where)]
        assert got == [cid for cid, _ in nearest(queries.by_text[f"t{t}"], n, where)]
        tries.append(len(calls))
    assert 2 in tries  # the second read sufficed at least once
