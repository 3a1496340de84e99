"""Schemathesis over the OpenAPI schema: requests generated from every operation's schema,
valid and invalid, sent to the real app (real store, real embedding model, extractive
generator). No request may get a 5xx, and every response must match its documented schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.app import create_app
from api.assembly import build_embedder, build_ingester, build_store
from api.keys import KeyStore, Role
from api.settings import Settings
from tests.conftest import markdown, write

ADMIN_KEY: list[str] = []


@pytest.fixture(scope="module")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    corpus = tmp_path_factory.mktemp("corpus")
    write(
        corpus / "coe" / "intake.md",
        markdown("intake", "# Intake\n\nSubmit the AI-01 form; triage takes 10 working days."),
    )
    write(
        corpus / "it" / "kaig-faq.md",
        markdown(
            "kaig-faq",
            "# KAIG FAQ\n\nThe gateway keeps prompts for 90 days.",
            doc_type="faq",
            last_reviewed="2024-09-01",
        ),
    )
    # a document the first golden question expects, so that an evaluation run may start
    write(
        corpus / "coe" / "data-retention-policy.md",
        (CORPUS / "coe" / "data-retention-policy.md").read_text(encoding="utf-8"),
    )
    settings_ = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        corpus_dir=corpus,
        today="2026-11-28",
        generator="extractive",
        serve_threads=2,
        rate_limit_per_minute=0,
    )
    store = build_store(settings_)
    build_ingester(settings_, store, build_embedder(settings_)).sync(corpus)
    keys = KeyStore(settings_.keys_path)
    ADMIN_KEY[:] = [keys.create("fuzzer", Role.ADMIN)]
    keys.close()
    app = create_app(settings_)
    with TestClient(app):  # runs the lifespan: services stay on app.state while the module runs
        yield app


CORPUS = Path(__file__).parents[1] / "corpus"
EVAL_RUN = {"dataset": "golden", "generator": "extractive", "limit": 1}
UPLOAD = "POST /v1/documents"  # multipart files: tests/test_admin_api.py uploads real ones


def valid_requests(answer_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    """One request per operation (but the upload) that must succeed."""
    question = "How long does the gateway keep prompts?"
    intake = {"path_parameters": {"doc_id": "intake"}}
    run = {"path_parameters": {"run_id": run_id}}
    return {
        "GET /v1/health": {},
        "GET /v1/ready": {},
        "GET /metrics": {},
        "POST /v1/search": {"body": {"query": "intake form"}},
        "POST /v1/ask": {"body": {"question": question}},
        "POST /v1/ask/stream": {"body": {"question": question}},
        "GET /v1/documents": {},
        "GET /v1/documents/stale": {},
        "GET /v1/documents/{doc_id}": intake,
        "GET /v1/documents/{doc_id}/source": intake,
        "POST /v1/documents/{doc_id}/review": {**intake, "body": {"note": "checked"}},
        "POST /v1/feedback": {"body": {"answer_id": answer_id, "rating": "up"}},
        "GET /v1/gaps": {},
        "GET /v1/conflicts": {},
        "GET /v1/health/kb": {},
        "GET /v1/projects/similar": {"query": {"q": "intake form"}},
        "GET /v1/audit": {},
        "POST /v1/chat/completions": {
            "body": {"messages": [{"role": "user", "content": question}]}
        },
        "GET /v1/models": {},
        "GET /v1/models/{model}": {"path_parameters": {"model": "kb-extractive"}},
        "POST /v1/sync": {},
        "POST /v1/evals/runs": {"body": EVAL_RUN},
        "GET /v1/evals/runs": {},
        "GET /v1/evals/runs/{run_id}": run,
        "GET /v1/evals/runs/{run_id}/report": run,
    }


def test_no_server_errors_and_responses_match_the_schema(served_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", served_app)
    headers = {"Authorization": f"Bearer {ADMIN_KEY[0]}"}
    checks = [not_a_server_error, response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    asked = TestClient(served_app).post(
        "/v1/ask", json={"question": "Who triages the intake form?"}, headers=headers
    )
    runs = served_app.state.services.eval_runs
    started = TestClient(served_app).post("/v1/evals/runs", json=EVAL_RUN, headers=headers)
    runs.wait(120)  # done before the fuzzing, whose valid request starts another
    valid = valid_requests(asked.json()["answer_id"], started.json()["id"])
    assert {o.label for o in operations} == {*valid, UPLOAD}  # every route, and only these
    seen: dict[str, set[int]] = {}

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def check(case: Any) -> None:
            response = case.call_and_validate(headers=headers, checks=checks)
            seen.setdefault(case.operation.label, set()).add(response.status_code)

        check()
    # every operation was exercised, past authentication (the key is an admin's)
    assert set(seen) == {o.label for o in operations}
    assert {label for label, codes in seen.items() if codes & {401, 403}} == set()
    # Generated values mostly match no data (random ids are 404s, random files 400s), and
    # the chat route's validators refuse what its schema cannot express (the last message
    # must be the user's): so each operation also gets a request that must succeed.
    for operation in operations:
        if operation.label == UPLOAD:
            continue
        response = operation.Case(**valid[operation.label]).call_and_validate(
            headers=headers, checks=checks
        )
        assert 200 <= response.status_code < 300, (operation.label, response.text)
    runs.wait(120)
