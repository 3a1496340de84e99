"""Properties over random corpora, principals and queries (Hypothesis): nothing outside the
principal's access ever comes back, filters are exact, results are sorted and unique, facet
counts are exactly those of the allowed candidate documents, and the keyword index holds exactly
the collection's chunks after any history of ingests and deletes."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.embedding import CachedEmbedder, SentenceTransformerEmbedder
from index.facets import FACET_NAMES
from index.filters import Principal, SearchFilters, build_where
from index.hybrid import HybridRetriever, RetrievalOptions
from index.keyword import KeywordIndex, Tokenizer
from index.records import DocType
from ingest.sync import Ingester
from tests.conftest import drop_store, markdown, new_store, write

TODAY = dt.date(2026, 11, 28)
WORDS = [
    "invoice",
    "chatbot",
    "contract",
    "gateway",
    "vendor",
    "retention",
    "model",
    "pilot",
    "threshold",
    "budget",
    "DocuSift",
    "ClauseWise",
    "KAIG",
    "AI-07",
]
DEPARTMENTS = ["coe", "finance", "legal"]
GROUPS = ["coe", "finance", "legal", "hr"]

_doc = st.fixed_dictionaries(
    {
        "department": st.sampled_from(DEPARTMENTS),
        "access": st.lists(st.sampled_from(["all", *GROUPS]), min_size=1, max_size=2, unique=True),
        "status": st.sampled_from(["approved", "approved", "draft", "superseded"]),
        "words": st.lists(st.sampled_from(WORDS), min_size=3, max_size=25),
    }
)

_settings = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _write_docs(root: Path, docs: dict[int, dict[str, Any]]) -> None:
    for path in root.rglob("*.md"):
        path.unlink()
    for i, doc in docs.items():
        body = f"# Doc {i}\n\n" + " ".join(doc["words"]) + ".\n"
        extra = {
            key: doc[key] for key in ("doc_type", "vendor", "year") if doc.get(key) is not None
        }
        access = f"[{', '.join(doc['access'])}]"
        write(
            root / doc["department"] / f"d{i}.md",
            markdown(f"d{i}", body, access=access, status=doc["status"], **extra),
        )


@_settings
@given(
    docs=st.dictionaries(st.integers(0, 9), _doc, min_size=1, max_size=8),
    groups=st.lists(st.sampled_from(GROUPS), max_size=2),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
    department=st.one_of(st.none(), st.sampled_from(DEPARTMENTS)),
    mode=st.sampled_from(["hybrid", "dense", "keyword"]),
)
def test_nothing_outside_access_or_filters_ever_comes_back(
    chroma_client: Any,
    embedder: SentenceTransformerEmbedder,
    docs: dict[int, dict[str, Any]],
    groups: list[str],
    query: str,
    department: str | None,
    mode: str,
) -> None:
    store = new_store(chroma_client)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _write_docs(Path(tmp), docs)
            Ingester(store, CachedEmbedder(embedder)).sync(Path(tmp))
        options = RetrievalOptions(mode=mode)  # type: ignore[arg-type]
        keyword = KeywordIndex(store, None, Tokenizer())
        retriever = HybridRetriever(store, embedder, keyword, options)
        principal = Principal.of(*groups)
        filters = SearchFilters.build(department=department)
        hits = retriever.retrieve(query, 10, today=TODAY, filters=filters, principal=principal)
        # the keyword path on its own too, below the final defence-in-depth check
        where = build_where(filters, principal, TODAY)
        keyword_docs = [cid.split(":")[0] for cid, *_ in keyword.search(query, 50, where)]
        for doc_id in [h.doc_id for h in hits] + keyword_docs:
            doc = docs[int(doc_id[1:])]
            assert "all" in doc["access"] or set(groups) & set(doc["access"]), doc_id
            assert doc["status"] != "superseded"
            assert department is None or doc["department"] == department
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert len({h.chunk_id for h in hits}) == len(hits)
    finally:
        drop_store(chroma_client, store)


@_settings
@given(
    history=st.lists(st.dictionaries(st.integers(0, 5), _doc, max_size=5), min_size=1, max_size=4)
)
def test_keyword_index_always_matches_the_collection(
    chroma_client: Any,
    embedder: SentenceTransformerEmbedder,
    history: list[dict[int, dict[str, Any]]],
) -> None:
    store = new_store(chroma_client)
    model = CachedEmbedder(embedder)
    keyword = KeywordIndex(store, None, Tokenizer())
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for docs in history:
                _write_docs(Path(tmp), docs)
                Ingester(store, model).sync(Path(tmp))
                ids, _, _ = store.all_chunks()
                assert sorted(keyword.current().ids) == sorted(ids)
    finally:
        drop_store(chroma_client, store)


_faceted_doc = st.builds(
    lambda doc, doc_type, vendor, year: {
        **doc,
        "doc_type": doc_type,
        "vendor": vendor,
        "year": year,
    },
    _doc,
    st.sampled_from([t.value for t in DocType]),
    st.one_of(st.none(), st.sampled_from(["DocuSift", "ClauseWise", "Kestrel"])),
    st.one_of(st.none(), st.integers(2022, 2025)),
)


@_settings
@given(
    docs=st.dictionaries(st.integers(0, 9), _faceted_doc, min_size=1, max_size=8),
    groups=st.lists(st.sampled_from(GROUPS), max_size=2),
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
    department=st.one_of(st.none(), st.sampled_from(DEPARTMENTS)),
    mode=st.sampled_from(["hybrid", "dense", "keyword"]),
)
def test_facets_count_exactly_the_allowed_candidate_documents(
    chroma_client: Any,
    embedder: SentenceTransformerEmbedder,
    docs: dict[int, dict[str, Any]],
    groups: list[str],
    query: str,
    department: str | None,
    mode: str,
) -> None:
    store = new_store(chroma_client)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _write_docs(Path(tmp), docs)
            Ingester(store, CachedEmbedder(embedder)).sync(Path(tmp))
        options = RetrievalOptions(mode=mode)  # type: ignore[arg-type]
        tokenize = Tokenizer()
        retriever = HybridRetriever(store, embedder, KeywordIndex(store, None, tokenize), options)
        principal = Principal.of(*groups)
        filters = SearchFilters.build(department=department)
        found = retriever.retrieve_with_facets(
            query, 10, today=TODAY, filters=filters, principal=principal
        )
        allowed = {
            f"d{i}"
            for i, doc in docs.items()
            if ("all" in doc["access"] or set(groups) & set(doc["access"]))
            and doc["status"] != "superseded"
            and department in (None, doc["department"])
        }
        # every document is one chunk, far fewer than the pool: the dense path brings them all,
        # the keyword path those sharing a word with the query
        words = set(tokenize(query))
        expected = (
            {d for d in allowed if words & set(tokenize(" ".join(docs[int(d[1:])]["words"])))}
            if mode == "keyword"
            else allowed
        )
        assert set(found.documents) == expected
        assert {h.doc_id for h in found.hits} <= expected
        for name in FACET_NAMES:
            truth: dict[Any, int] = {}
            for doc_id in found.documents:
                value = docs[int(doc_id[1:])][name]
                if value is not None:
                    truth[value] = truth.get(value, 0) + 1
            counts = found.facets[name]
            assert {c.value: c.count for c in counts} == truth, name
            assert [(-c.count, c.value) for c in counts] == sorted(
                (-n, v) for v, n in truth.items()
            )
        assert found.hits == retriever.retrieve(
            query, 10, today=TODAY, filters=filters, principal=principal
        )
    finally:
        drop_store(chroma_client, store)
