"""Facet counts: the counting on fixed inputs, and `POST /v1/search` over a real store with the
real model, where counts are of distinct documents within the caller's access and filters."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.assembly import build_ingester, build_store
from api.keys import KeyStore, Role
from api.settings import Settings
from index.embedding import SentenceTransformerEmbedder
from index.facets import FacetCount, Facets, count_facets, pool_documents
from index.filters import Principal
from index.hybrid import HybridRetriever, RetrievalOptions
from index.keyword import KeywordIndex, Tokenizer
from index.store import ChromaStore
from tests.conftest import TODAY_STR, markdown, write

# -- counting, on fixed inputs ----------------------------------------------------------------


def _chunk(doc_id: str, **fields: Any) -> dict[str, Any]:
    return {"doc_id": doc_id, "access": ["all"], "chunk_index": 0, "title": doc_id, **fields}


def test_pool_has_each_allowed_document_once_with_its_best_chunks_fields() -> None:
    rows = [
        _chunk("a", department="finance", vendor="DocuSift", year=2025, section="Costs"),
        _chunk("b", department="legal", access=["legal"]),
        _chunk("a", department="hr", chunk_index=3),  # a later chunk of a: the first one wins
        _chunk("c", department="coe", status="draft"),
    ]
    where = {"access": {"$contains": "all"}}
    documents = pool_documents(rows, where)
    assert documents == {
        "a": {"department": "finance", "vendor": "DocuSift", "year": 2025},
        "c": {"department": "coe", "status": "draft"},
    }
    assert list(documents) == ["a", "c"]
    assert set(pool_documents(rows, None)) == {"a", "b", "c"}


def test_counts_sort_by_count_then_value_and_leave_out_missing_values() -> None:
    documents: list[dict[str, Any]] = [
        {"department": "legal", "doc_type": "faq", "status": "approved", "year": 2024},
        {"department": "finance", "doc_type": "faq", "status": "approved", "vendor": "DocuSift"},
        {"department": "finance", "doc_type": "policy", "status": "draft", "year": 2023},
        {"department": "coe", "doc_type": "policy", "status": "approved", "year": 2024},
        {"department": "hr", "doc_type": "showcase", "status": "approved", "vendor": "Acme"},
    ]
    facets = count_facets(documents)
    assert facets.to_json() == {
        "department": [
            {"value": "finance", "count": 2},
            {"value": "coe", "count": 1},
            {"value": "hr", "count": 1},
            {"value": "legal", "count": 1},
        ],
        "doc_type": [
            {"value": "faq", "count": 2},
            {"value": "policy", "count": 2},
            {"value": "showcase", "count": 1},
        ],
        "status": [{"value": "approved", "count": 4}, {"value": "draft", "count": 1}],
        "vendor": [{"value": "Acme", "count": 1}, {"value": "DocuSift", "count": 1}],
        "year": [{"value": 2024, "count": 2}, {"value": 2023, "count": 1}],
    }
    assert facets["year"][0] == FacetCount(2024, 2)
    assert isinstance(facets["year"][0].value, int)


def test_only_the_facets_asked_for_are_counted() -> None:
    documents = [{"department": "coe", "vendor": "Acme"}, {"department": "coe"}]
    assert count_facets(documents, ["vendor"]) == Facets({"vendor": (FacetCount("Acme", 1),)})
    assert count_facets(documents, []) == Facets({})
    assert count_facets([]).to_json() == {
        name: [] for name in ("department", "doc_type", "status", "vendor", "year")
    }


# -- over a real store, through the API -------------------------------------------------------

LESSONS = "# Voice bot lessons\n\n" + "\n\n".join(
    f"## Lesson {i}\n\n" + f"The voice bot pilot taught lesson {i} about call routing. " * 14
    for i in range(1, 7)
)
DOCS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "ap-pilot": (
        "finance",
        "# AP pilot\n\nInvoice matching with DocuSift reached 81% touchless.",
        {"doc_type": "lessons_learned", "vendor": "DocuSift", "year": 2025},
    ),
    "ap-prices": (
        "finance",
        "# DocuSift prices\n\nDocuSift charges GBP 0.045 per invoice page.",
        {"doc_type": "vendor_evaluation", "vendor": "DocuSift", "year": 2025, "access": "finance"},
    ),
    "cs-bot": (
        "customer_service",
        "# Ask Kestrel\n\nThe chatbot deflects 34% of contacts.",
        {"doc_type": "showcase", "vendor": "Kestrel", "year": 2024},
    ),
    "cs-voice": (
        "customer_service",
        LESSONS,
        {"doc_type": "lessons_learned", "year": 2024, "status": "draft"},
    ),
    "clauses": (
        "legal",
        "# ClauseWise review\n\nClauseWise flags risky indemnity clauses in contracts.",
        {"doc_type": "vendor_evaluation", "vendor": "ClauseWise", "year": 2023},
    ),
    "intake-v1": (
        "coe",
        "# Intake v1\n\nSubmit form AI-01 to have a use case triaged.",
        {"doc_type": "playbook", "status": "superseded"},
    ),
}
KEYS: dict[str, str] = {}
QUERY = "prior projects with an AI vendor"


@pytest.fixture(scope="module")
def base(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> tuple[Settings, ChromaStore]:
    root = tmp_path_factory.mktemp("docs")
    for doc_id, (department, body, fields) in DOCS.items():
        write(root / department / f"{doc_id}.md", markdown(doc_id, body, **fields))
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        today=TODAY_STR,
        generator="extractive",
        serve_threads=2,  # torch threads are process-wide: leave the other tests theirs
        rate_limit_per_minute=0,
    )
    store = build_store(settings)
    report = build_ingester(settings, store, embedder).sync(root)
    assert not report.failed
    keys = KeyStore(settings.keys_path)
    KEYS.update(
        reader=keys.create("reader", Role.READER),
        finance=keys.create("finance reader", Role.READER, ["finance"]),
        admin=keys.create("admin", Role.ADMIN),
    )
    keys.close()
    return settings, store


@pytest.fixture(scope="module")
def client(base: tuple[Settings, ChromaStore]) -> Iterator[TestClient]:
    with TestClient(create_app(base[0])) as test_client:
        test_client.headers["Authorization"] = f"Bearer {KEYS['reader']}"
        yield test_client


def _facets(client: TestClient, who: str = "reader", **body: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/search",
        json={"query": QUERY, **body},
        headers={"Authorization": f"Bearer {KEYS[who]}"},
    )
    assert response.status_code == 200, response.text
    facets: dict[str, Any] = response.json()["facets"]
    return {name: [(c["value"], c["count"]) for c in counts] for name, counts in facets.items()}


def test_counts_are_of_distinct_readable_current_documents(
    client: TestClient, base: tuple[Settings, ChromaStore]
) -> None:
    assert len(base[1].document_chunks("cs-voice")) >= 3  # counted once all the same
    assert _facets(client) == {
        "department": [("customer_service", 2), ("finance", 1), ("legal", 1)],
        "doc_type": [("lessons_learned", 2), ("showcase", 1), ("vendor_evaluation", 1)],
        "status": [("approved", 3), ("draft", 1)],
        "vendor": [("ClauseWise", 1), ("DocuSift", 1), ("Kestrel", 1)],
        "year": [(2024, 2), (2023, 1), (2025, 1)],
    }


def test_a_restricted_document_counts_only_for_a_key_of_its_group(client: TestClient) -> None:
    finance = _facets(client, "finance")
    assert finance["department"] == [("customer_service", 2), ("finance", 2), ("legal", 1)]
    assert finance["doc_type"] == [
        ("lessons_learned", 2),
        ("vendor_evaluation", 2),
        ("showcase", 1),
    ]
    assert finance["vendor"] == [("DocuSift", 2), ("ClauseWise", 1), ("Kestrel", 1)]
    assert finance["year"] == [(2024, 2), (2025, 2), (2023, 1)]
    assert _facets(client, "admin")["vendor"] == finance["vendor"]
    docusift: dict[str, Any] = {
        "query": "DocuSift price per invoice page",
        "filters": {"vendor": "DocuSift"},
    }
    assert _facets(client, **docusift)["department"] == [("finance", 1)]
    assert _facets(client, "finance", **docusift)["department"] == [("finance", 2)]


def test_filters_narrow_the_counts(client: TestClient) -> None:
    assert _facets(client, filters={"department": "customer_service"}) == {
        "department": [("customer_service", 2)],
        "doc_type": [("lessons_learned", 1), ("showcase", 1)],
        "status": [("approved", 1), ("draft", 1)],
        "vendor": [("Kestrel", 1)],
        "year": [(2024, 2)],
    }
    assert _facets(client, filters={"year": 2025}) == {
        "department": [("finance", 1)],
        "doc_type": [("lessons_learned", 1)],
        "status": [("approved", 1)],
        "vendor": [("DocuSift", 1)],
        "year": [(2025, 1)],
    }
    everything = _facets(client, "admin", filters={"include_superseded": True})
    assert everything["status"] == [("approved", 4), ("draft", 1), ("superseded", 1)]
    assert everything["department"] == [
        ("customer_service", 2),
        ("finance", 2),
        ("coe", 1),
        ("legal", 1),
    ]


def test_facets_can_be_chosen_or_turned_off_and_hits_stay_as_they_were(
    client: TestClient,
) -> None:
    body = {"query": "chatbot deflection rate", "k": 3}
    full = client.post("/v1/search", json=body).json()
    assert set(full) == {"hits", "facets"}
    assert full["hits"][0]["doc_id"] == "cs-bot"
    chosen = client.post("/v1/search", json={**body, "facets": ["vendor", "year"]}).json()
    assert chosen["facets"] == {
        "vendor": full["facets"]["vendor"],
        "year": full["facets"]["year"],
    }
    off = client.post("/v1/search", json={**body, "facets": []}).json()
    assert off == {"hits": full["hits"], "facets": {}}
    bad = client.post("/v1/search", json={**body, "facets": ["owner"]})
    assert bad.status_code == 422
    assert "facets" in bad.text


def test_keyword_pool_counts_only_documents_that_share_a_query_word(
    base: tuple[Settings, ChromaStore], embedder: SentenceTransformerEmbedder
) -> None:
    store = base[1]
    keyword = KeywordIndex(store, None, Tokenizer())
    retriever = HybridRetriever(store, embedder, keyword, RetrievalOptions(mode="keyword"))
    today = base[0].today_date()
    anyone = retriever.retrieve_with_facets("DocuSift", 5, today=today)
    assert list(anyone.documents) == ["ap-pilot"]
    assert anyone.facets.to_json()["vendor"] == [{"value": "DocuSift", "count": 1}]
    finance = retriever.retrieve_with_facets(
        "DocuSift", 5, today=today, principal=Principal.of("finance"), facets=["doc_type"]
    )
    assert sorted(finance.documents) == ["ap-pilot", "ap-prices"]
    assert finance.facets.to_json() == {
        "doc_type": [
            {"value": "lessons_learned", "count": 1},
            {"value": "vendor_evaluation", "count": 1},
        ]
    }
    assert [h.doc_id for h in finance.hits] == [
        h.doc_id
        for h in retriever.retrieve("DocuSift", 5, today=today, principal=Principal.of("finance"))
    ]
