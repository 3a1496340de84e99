"""The HTTP service over a real embedded store with the real model."""

from __future__ import annotations

import json
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
    write(
        root / "finance" / "prices.md",
        markdown(
            "prices",
            "# DocuSift prices\n\nDocuSift charges GBP 0.045 per invoice page.",
            access="finance",
        ),
    )
    write(
        root / "it" / "kaig-faq.md",
        markdown(
            "kaig-faq",
            "# KAIG FAQ\n\nThe gateway keeps prompts and answers for 90 days before deletion.",
            doc_type="faq",
            owner="Nadia Haddad",
            last_reviewed="2024-09-01",
        ),
    )
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        today="2026-11-28",
        generator="extractive",
        serve_threads=2,  # torch threads are process-wide: leave the other tests theirs
    )
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


def test_ready_reports_the_store_and_generator(client: TestClient) -> None:
    body = client.get("/v1/ready").json()
    assert body["status"] == "ready"
    assert body["chunks"] >= 4
    assert body["generator"] == "extractive"


def test_ask_answers_with_citations_and_stale_warnings(client: TestClient) -> None:
    response = client.post("/v1/ask", json={"question": "How long does the gateway keep prompts?"})
    assert response.status_code == 200
    body = response.json()
    assert not body["refused"]
    assert body["citations"][0]["doc_id"] == "kaig-faq"
    assert body["citations"][0]["stale"] is True
    assert body["warnings"]
    assert "Nadia Haddad" in body["warnings"][0]


def test_ask_refuses_what_the_base_does_not_cover(client: TestClient) -> None:
    body = client.post("/v1/ask", json={"question": "What is the Gdansk canteen menu?"}).json()
    assert body["refused"] is True
    assert body["citations"] == []


def test_ask_stream_is_server_sent_events(client: TestClient) -> None:
    with client.stream(
        "POST",
        "/v1/ask/stream",
        json={"question": "What share of contacts does the chatbot deflect?"},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = "".join(response.iter_text())
    frames = [f for f in raw.split("\n\n") if f]
    assert all(f.startswith("event: ") and "\ndata: " in f for f in frames)
    assert frames[0].startswith("event: token")
    assert frames[-1].startswith("event: final")
    final = json.loads(frames[-1].split("data: ", 1)[1])
    assert final["citations"][0]["doc_id"] == "ask-kestrel"


def test_restricted_content_is_invisible_on_every_route(client: TestClient) -> None:
    question = {"question": "What does DocuSift charge per invoice page?"}
    assert "0.045" not in client.post("/v1/ask", json=question).text
    assert "0.045" not in client.post("/v1/search", json={"query": "DocuSift price"}).text
    listed = [d["doc_id"] for d in client.get("/v1/documents").json()]
    assert "prices" not in listed
    assert client.get("/v1/documents/prices").status_code == 404
    assert client.get("/v1/documents/prices/source").status_code == 404


def test_documents_detail_source_and_review_queue(client: TestClient) -> None:
    detail = client.get("/v1/documents/kaig-faq").json()
    assert detail["stale"] is True
    assert "90 days" in detail["chunk_list"][0]["text"]
    source = client.get("/v1/documents/kaig-faq/source")
    assert source.status_code == 200
    assert "owner: Nadia Haddad" in source.text
    queue = client.get("/v1/documents/stale").json()
    assert queue[0]["owner"] == "Nadia Haddad"
    assert queue[0]["documents"][0]["doc_id"] == "kaig-faq"
    assert queue[0]["documents"][0]["days_overdue"] == 638  # 2025-02-28 to 2026-11-28
    assert client.get("/v1/documents/nope").json()["status"] == 404
