"""Similar projects (`GET /v1/projects/similar`, `kb projects`) over part of the shipped corpus,
a real embedded store, the real model and the app with keys of different groups."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as kb_app
from index.embedding import SentenceTransformerEmbedder
from tests.project_corpus import TODAY, copy_corpus, ingest_with_keys, kb_settings

PROJECT_TYPES = {"lessons_learned", "showcase", "vendor_evaluation"}
LESSONS = "expense-receipt-ocr-lessons"  # finance's lessons learned, readable by all
KEYS: dict[str, str] = {}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, data: Path, embedder: SentenceTransformerEmbedder
) -> Iterator[TestClient]:
    folder = copy_corpus(tmp_path_factory.mktemp("space") / "corpus")
    settings = kb_settings(folder, data)
    KEYS.update(ingest_with_keys(settings, folder, embedder))
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def similar(client: TestClient, who: str, **params: Any) -> Any:
    response = client.get(
        "/v1/projects/similar", params=params, headers={"Authorization": f"Bearer {KEYS[who]}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def text_of(client: TestClient, doc_id: str) -> str:
    detail = client.get(
        f"/v1/documents/{doc_id}", headers={"Authorization": f"Bearer {KEYS['admin']}"}
    )
    return " ".join(" ".join(c["text"].split()) for c in detail.json()["chunk_list"])


def test_a_lessons_learned_document_finds_projects_of_other_departments(
    client: TestClient,
) -> None:
    found = similar(client, "finance_reader", doc_id=LESSONS, limit=5)
    assert found["basis"] == "document"
    assert found["source"] == {
        "doc_id": LESSONS,
        "title": "Lessons learned: expense receipt OCR experiment",
        "department": "finance",
    }
    assert found["excluded_departments"] == ["finance"]
    assert "left out" in found["note"]
    assert "finance" in found["note"]
    projects = found["projects"]
    assert len(projects) == 5  # the base holds more than five such documents elsewhere
    assert {p["department"] for p in projects}.isdisjoint({"finance"})
    assert {p["doc_type"] for p in projects} <= PROJECT_TYPES
    assert len({p["doc_id"] for p in projects}) == 5  # one entry per document
    similarities = [p["similarity"] for p in projects if p["similarity"] is not None]
    assert similarities == sorted(similarities, reverse=True)

    # its own department was left out, not missing: asked for, it comes back (and never itself)
    own = similar(client, "finance_reader", doc_id=LESSONS, limit=20, include_own_department=True)
    assert own["excluded_departments"] == []
    finance = [p["doc_id"] for p in own["projects"] if p["department"] == "finance"]
    assert finance == ["ap-invoice-matching-showcase"]
    assert LESSONS not in {p["doc_id"] for p in own["projects"]}


def test_each_project_carries_its_metadata_a_lesson_and_its_review_status(
    client: TestClient,
) -> None:
    found = similar(client, "admin", q="a chatbot that answers customers' questions", limit=8)
    assert found["basis"] == "description"
    assert found["source"] is None
    assert found["excluded_departments"] == []
    projects = found["projects"]
    assert len(projects) == 8
    today = dt.date.fromisoformat(TODAY)
    stale = [p for p in projects if p["stale"]]
    assert stale  # the corpus has overdue evaluations among these (convai, quillmark, ...)
    for p in projects:
        review = dt.date.fromisoformat(p["review_date"])
        assert p["stale"] == (today > review), p["doc_id"]
        assert p["lesson"], p["doc_id"]
        assert p["lesson"].rstrip(".") in text_of(client, p["doc_id"]), p["doc_id"]
    lessons_learned = [p for p in projects if p["doc_type"] == "lessons_learned"]
    assert lessons_learned
    for p in lessons_learned:  # a project's own facts come with it
        assert (p["project"], p["outcome"], p["year"]) != (None, None, None), p["doc_id"]


@pytest.mark.parametrize(
    ("query", "restricted", "reader"),
    [
        (
            "bias audit of automated CV screening of candidates",
            "hr-cv-screening-bias-audit",
            "hr_reader",
        ),
        (
            "prompt injection in a ticket summariser",
            "ticket-summariser-injection-lessons",
            "coe_reader",
        ),
    ],
)
def test_a_reader_never_sees_a_document_of_another_group(
    client: TestClient, query: str, restricted: str, reader: str
) -> None:
    allowed = [p["doc_id"] for p in similar(client, reader, q=query, limit=20)["projects"]]
    assert restricted in allowed  # the query finds it for a reader of its group
    others = [p["doc_id"] for p in similar(client, "finance_reader", q=query, limit=20)["projects"]]
    assert others  # and finds other documents for the finance reader
    assert restricted not in others
    # nor can a document of another group be named as the project to compare with
    hidden = client.get(
        "/v1/projects/similar",
        params={"doc_id": restricted},
        headers={"Authorization": f"Bearer {KEYS['finance_reader']}"},
    )
    assert hidden.status_code == 404
    assert similar(client, reader, doc_id=restricted)["source"]["doc_id"] == restricted


def test_department_filters_and_bad_requests(client: TestClient) -> None:
    query = "generative drafting assistant for sales and marketing copy"
    everyone = similar(client, "admin", q=query, limit=20)["projects"]
    assert {"sales", "marketing"} <= {p["department"] for p in everyone}
    only = similar(client, "admin", q=query, limit=20, department=["sales", "legal"])
    assert only["projects"]
    assert {p["department"] for p in only["projects"]} <= {"sales", "legal"}
    without = similar(client, "admin", q=query, limit=20, exclude_department="marketing")
    assert without["excluded_departments"] == ["marketing"]
    assert "marketing" in without["note"]
    assert without["projects"]
    assert "marketing" not in {p["department"] for p in without["projects"]}

    auth = {"Authorization": f"Bearer {KEYS['admin']}"}
    refused: list[tuple[dict[str, str | int], str]] = [
        ({}, "q"),
        ({"q": "chatbot", "doc_id": LESSONS}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "chatbot", "limit": 0}, "limit"),
        ({"q": "chatbot", "colour": "red"}, "colour"),
    ]
    for params, parameter in refused:
        bad = client.get("/v1/projects/similar", params=params, headers=auth)
        assert bad.status_code == 422, (params, bad.text)
        assert parameter in bad.text
    assert (
        client.get("/v1/projects/similar", params={"doc_id": "nope"}, headers=auth).status_code
        == 404
    )
    assert TestClient(client.app).get("/v1/projects/similar", params={"q": "x"}).status_code == 401


def test_kb_projects_prints_what_the_api_returns(
    client: TestClient, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KB_DATA_DIR", str(data))
    monkeypatch.setenv("KB_TODAY", TODAY)
    runner = CliRunner()
    run = runner.invoke(kb_app, ["projects", "--doc", LESSONS, "--json"])
    assert run.exit_code == 0, run.output
    printed = json.loads(run.stdout)
    api = similar(client, "finance_reader", doc_id=LESSONS)  # the CLI reads as no group
    assert [(p["doc_id"], p["lesson"]) for p in printed["projects"]] == [
        (p["doc_id"], p["lesson"]) for p in api["projects"]
    ]
    assert printed["excluded_departments"] == ["finance"]
    shown = runner.invoke(kb_app, ["projects", "a chatbot for customers", "--limit", "2"])
    assert shown.exit_code == 0, shown.output
    assert "1. " in shown.stdout
    assert "3. " not in shown.stdout
    neither = runner.invoke(kb_app, ["projects"])
    assert neither.exit_code != 0
    assert "parameter 'description (or --doc)'" in str(neither.exception)
