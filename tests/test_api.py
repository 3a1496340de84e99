"""The HTTP service over a real embedded store with the real model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.assembly import build_embedder, build_ingester, build_store
from api.settings import Settings
from tests.conftest import markdown, write


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("docs")
    write(
        root / "customer_service" / "bot.md",
        markdown(
            "ask-kestrel",
            "# Ask Kestrel\n\n## Results\n\nThe chatbot deflected 34% of contacts.",
            doc_type="showcase",
        ),
    )
    write(root / "legal" / "clauses.md", markdown("clauses", "# Clauses\n\nClauseWise flags risk."))
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), today="2026-11-28")
    store = build_store(settings)
    build_ingester(settings, store, build_embedder(settings)).sync(root)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_health(client: TestClient) -> None:
    assert client.get("/v1/health").json() == {"status": "ok"}


def test_search_returns_ranked_hits_with_sources(client: TestClient) -> None:
    response = client.post("/v1/search", json={"query": "chatbot deflection rate", "k": 2})
    assert response.status_code == 200
    hits = response.json()["hits"]
    assert hits[0]["doc_id"] == "ask-kestrel"
    assert hits[0]["section"] == "Results"
    assert hits[0]["score"] >= hits[1]["score"]


def test_search_filters_inside_the_query(client: TestClient) -> None:
    body = {"query": "chatbot deflection rate", "k": 5, "filters": {"department": "legal"}}
    hits = client.post("/v1/search", json=body).json()["hits"]
    assert [h["doc_id"] for h in hits] == ["clauses"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"query": "x", "k": 0}, "k"),
        ({"query": "", "k": 3}, "query"),
        ({"query": "x", "filters": {"doc_type": "memo"}}, "doc_type"),
    ],
)
def test_bad_requests_are_problem_responses(client: TestClient, body: dict, needle: str) -> None:  # type: ignore[type-arg]
    response = client.post("/v1/search", json=body)
    assert response.status_code == 422
    assert needle in response.text
    assert "Traceback" not in response.text
