"""The HTTP service over a real embedded store with the real model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.assembly import build_embedder, build_ingester, build_store
from api.keys import KeyStore, Role
from api.ratelimit import RateLimiter
from api.settings import Settings
from assistant.service import Answer, Event, Final, Token
from index.errors import StoreError
from tests.samples import write_service_base


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("docs")
    write_service_base(root)
    SETTINGS_DIR["data"] = tmp_path_factory.mktemp("data")
    settings = Settings(
        data_dir=SETTINGS_DIR["data"],
        today="2026-11-28",
        generator="extractive",
        serve_threads=2,  # torch threads are process-wide: leave the other tests theirs
        rate_limit_per_minute=0,  # test_rate_limit_* sets its own
    )
    store = build_store(settings)
    build_ingester(settings, store, build_embedder(settings)).sync(root)
    keys = KeyStore(settings.keys_path)
    KEYS.update(
        reader=keys.create("reader", Role.READER),
        finance=keys.create("finance reader", Role.READER, ["finance"]),
        spoke=keys.create("cs spoke", Role.SPOKE, ["customer_service"]),
        admin=keys.create("admin", Role.ADMIN),
        revoked=keys.create("gone", Role.ADMIN),
    )
    keys.revoke(KEYS["revoked"].split("_")[1])
    keys.close()
    with TestClient(create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {KEYS['reader']}"
        yield test_client


KEYS: dict[str, str] = {}
SETTINGS_DIR: dict[str, Path] = {}  # the module's data folder


def as_(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who]}"}


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
def test_bad_requests_are_problem_responses(
    client: TestClient, body: dict[str, object], needle: str
) -> None:
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
    assert frames[0].startswith("event: sources")  # before any token
    found = json.loads(frames[0].split("data: ", 1)[1])["sources"]
    assert found[0]["doc_id"] == "ask-kestrel"
    assert [s["n"] for s in found] == list(range(1, len(found) + 1))
    assert frames[1].startswith("event: token")
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
    assert source.headers["content-disposition"].startswith("inline;")  # shown, not saved
    assert source.headers["content-type"] == "text/plain; charset=utf-8"
    assert source.headers["x-content-type-options"] == "nosniff"
    assert client.get("/v1/documents/stale").status_code == 403  # readers have no queue
    queue = client.get("/v1/documents/stale", headers=as_("spoke")).json()
    assert queue[0]["owner"] == "Nadia Haddad"
    assert queue[0]["documents"][0]["doc_id"] == "kaig-faq"
    assert queue[0]["documents"][0]["days_overdue"] == 638  # 2025-02-28 to 2026-11-28
    assert client.get("/v1/documents/nope").json()["status"] == 404


def test_finance_key_reads_what_its_group_may(client: TestClient) -> None:
    question = {"question": "What does DocuSift charge per invoice page?"}
    answer = client.post("/v1/ask", json=question, headers=as_("finance")).json()
    assert answer["citations"][0]["doc_id"] == "prices"
    hits = client.post("/v1/search", json={"query": "DocuSift price"}, headers=as_("finance"))
    assert hits.json()["hits"][0]["doc_id"] == "prices"
    assert client.get("/v1/documents/prices", headers=as_("finance")).status_code == 200
    assert client.get("/v1/documents/prices/source", headers=as_("admin")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/search", {"query": "chatbot"}),
        ("POST", "/v1/ask", {"question": "chatbot deflection?"}),
        ("POST", "/v1/ask/stream", {"question": "chatbot deflection?"}),
        ("GET", "/v1/documents", None),
        ("GET", "/v1/documents/ask-kestrel", None),
        ("GET", "/v1/documents/ask-kestrel/source", None),
        ("GET", "/v1/documents/stale", None),
        ("GET", "/v1/gaps", None),
        ("POST", "/v1/feedback", {"answer_id": "x", "rating": "up"}),
        ("POST", "/v1/sync", None),
        ("GET", "/v1/models", None),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer kb_00000000_notarealkeynotarealkeynotarealkey"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-API-Key": "garbage"},
        "revoked",
    ],
    ids=["none", "unknown", "basic", "malformed", "revoked"],
)
def test_content_routes_need_a_valid_key(
    client: TestClient,
    method: str,
    path: str,
    body: dict[str, str] | None,
    headers: dict[str, str] | str,
) -> None:
    sent = as_(headers) if isinstance(headers, str) else headers
    # a client of its own, so that the fixture's default key cannot leak in
    response = TestClient(client.app).request(method, path, json=body, headers=sent)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["title"] == "Unauthorized"


def test_x_api_key_header_is_accepted(client: TestClient) -> None:
    fresh = TestClient(client.app)
    response = fresh.get("/v1/documents", headers={"X-API-Key": KEYS["reader"]})
    assert response.status_code == 200


def test_health_needs_no_key(client: TestClient) -> None:
    assert TestClient(client.app).get("/v1/health").status_code == 200


def _queue_entry(client: TestClient, doc_id: str) -> dict[str, Any]:
    queue = client.get("/v1/documents/stale", headers=as_("spoke")).json()
    entry: dict[str, Any] = next(d for q in queue for d in q["documents"] if d["doc_id"] == doc_id)
    return entry


def test_feedback_on_an_answer_feeds_the_review_queue(client: TestClient) -> None:
    before = _queue_entry(client, "kaig-faq")  # other tests of this module ask about it too
    question = {"question": "How long does the gateway keep prompts?"}
    answer = client.post("/v1/ask", json=question, headers=as_("spoke")).json()
    assert answer["citations"][0]["doc_id"] == "kaig-faq"
    body = {"answer_id": answer["answer_id"], "rating": "down", "reason": "outdated"}
    response = client.post("/v1/feedback", json=body, headers=as_("spoke"))
    assert response.status_code == 201, response.text
    assert response.json() == {**body}
    # someone else's answer does not exist for this key; unknown reasons are named
    assert client.post("/v1/feedback", json=body).status_code == 404
    bad = client.post("/v1/feedback", json={**body, "reason": "boring"}, headers=as_("spoke"))
    assert bad.status_code == 422
    assert "reason" in bad.text
    after = _queue_entry(client, "kaig-faq")
    assert after["cited"] == before["cited"] + 1
    assert after["thumbs_down"] == before["thumbs_down"] + 1


def test_refusals_appear_in_the_gap_report(client: TestClient) -> None:
    question = "Which band plays at the Gdansk summer party?"
    for _ in range(2):
        assert client.post("/v1/ask", json={"question": question}).json()["refused"]
    assert client.get("/v1/gaps").status_code == 403  # readers have no gap report
    gaps = client.get("/v1/gaps", headers=as_("spoke")).json()
    assert [g["times_asked"] for g in gaps if g["question"] == question] == [2]


def test_metrics_count_requests_by_route_and_answers(client: TestClient) -> None:
    client.get("/v1/documents/kaig-faq")
    client.post("/v1/ask", json={"question": "What share of contacts does the chatbot deflect?"})
    text = TestClient(client.app).get("/metrics").text  # no key needed: counts only
    assert 'route="/v1/documents/{doc_id}"' in text  # the template, not the raw path
    assert "kaig-faq" not in text
    assert 'kb_answers_total{generator="extractive",outcome="answered"}' in text
    assert "kb_stale_citations_total" in text
    assert 'kb_http_requests_total{method="POST",route="/v1/ask",status="200"}' in text


def test_rate_limit_answers_429_with_retry_after(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    kept = services.limiter
    services.limiter = RateLimiter(per_minute=6, burst=2)
    try:
        codes = [client.get("/v1/documents", headers=as_("finance")).status_code for _ in range(3)]
        limited = client.get("/v1/documents", headers=as_("finance"))
        other = client.get("/v1/documents", headers=as_("admin"))
    finally:
        services.limiter = kept
    assert codes == [200, 200, 429]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "requests a minute" in limited.json()["detail"]
    assert other.status_code == 200  # the limit is per key


def test_two_workers_on_one_data_folder_share_a_keys_rate_limit(client: TestClient) -> None:
    """Two services built from the same settings, as two uvicorn workers are: a key's burst is
    spent across both, not once in each."""
    settings = Settings(
        data_dir=SETTINGS_DIR["data"],
        today="2026-11-28",
        generator="extractive",
        serve_threads=2,
        rate_limit_per_minute=1,
        rate_limit_burst=4,
    )
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        codes = [
            worker.get("/v1/documents", headers=as_("spoke")).status_code
            for worker in (one, two, one, two, one, two)
        ]
        other = two.get("/v1/documents", headers=as_("finance"))
    assert codes == [200, 200, 200, 200, 429, 429]
    assert other.status_code == 200  # still per key


def test_stream_errors_before_and_after_the_response_starts(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assistant = client.app.state.services.assistant  # type: ignore[attr-defined]

    def fails_early(*args: object, **kwargs: object) -> Iterator[Event]:
        raise StoreError("the vector store is unreachable")
        yield  # a generator, like the real one

    def fails_late(*args: object, **kwargs: object) -> Iterator[Event]:
        yield Token("The gateway")
        raise RuntimeError("boom: internal detail")

    question = {"question": "How long does the gateway keep prompts?"}
    monkeypatch.setattr(assistant, "stream", fails_early)
    early = client.post("/v1/ask/stream", json=question)
    assert early.status_code == 503
    assert "unreachable" in early.json()["detail"]
    monkeypatch.setattr(assistant, "stream", fails_late)
    late = client.post("/v1/ask/stream", json=question)
    frames = [f for f in late.text.split("\n\n") if f]
    assert frames[0].startswith("event: token")
    assert frames[-1].startswith("event: error")  # not a stream that just stops
    error = json.loads(frames[-1].split("data: ", 1)[1])
    assert error["status"] == 500
    assert "boom" not in error["detail"]  # no internals reach the client


@dataclass(frozen=True)
class Sources:
    """A kind of event the routes do not know (the assistant may add such kinds)."""

    doc_ids: list[str]


STREAMED = "KAIG keeps prompts for 90 days [1]."


def _stream_request(route: str) -> dict[str, Any]:
    question = "How long does the gateway keep prompts?"
    if route == "/v1/ask/stream":
        return {"question": question}
    return {"messages": [{"role": "user", "content": question}], "stream": True}


def _frames(text: str) -> list[str]:
    return [f for f in text.split("\n\n") if f]


@pytest.mark.parametrize("route", ["/v1/ask/stream", "/v1/chat/completions"])
def test_streams_skip_events_they_do_not_know_and_record_the_answer(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    answer = Answer("q", "q", STREAMED, False, [], [], generator="scripted")

    def stream(*args: object, **kwargs: object) -> Iterator[object]:
        yield Sources(["kaig-faq"])  # before the first token
        yield Token(STREAMED)
        yield Sources(["kaig-faq"])
        yield Final(answer)

    assistant = client.app.state.services.assistant  # type: ignore[attr-defined]
    monkeypatch.setattr(assistant, "stream", stream)
    response = client.post(route, json=_stream_request(route))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-cache"
    frames = _frames(response.text)
    if route == "/v1/ask/stream":
        assert [f.split("\n")[0] for f in frames] == ["event: token", "event: final"]
    else:
        assert frames[-1] == "data: [DONE]"
        chunks = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert text == STREAMED
        assert chunks[-1]["answer_id"] == answer.answer_id
    # the answer served was recorded in the query log: its receiver may rate it
    feedback = {"answer_id": answer.answer_id, "rating": "up"}
    assert client.post("/v1/feedback", json=feedback).status_code == 201


@pytest.mark.parametrize("route", ["/v1/ask/stream", "/v1/chat/completions"])
def test_a_stream_without_a_final_answer_ends_with_an_error(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    def stream(*args: object, **kwargs: object) -> Iterator[Event]:
        yield Token("The gateway")

    assistant = client.app.state.services.assistant  # type: ignore[attr-defined]
    monkeypatch.setattr(assistant, "stream", stream)
    frames = _frames(client.post(route, json=_stream_request(route)).text)
    if route == "/v1/ask/stream":
        assert frames[-1].startswith("event: error")
        error = json.loads(frames[-1].split("data: ", 1)[1])
        assert error["status"] == 500
    else:
        assert "[DONE]" not in frames[-1]
        assert json.loads(frames[-1].removeprefix("data: "))["error"]["type"] == "server_error"
