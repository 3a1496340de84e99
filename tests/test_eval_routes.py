"""Evaluation runs over HTTP (api/routes/evals.py, evals/suite_runs.py) and the triage of thumbs
down into candidate cases (`kb eval triage`, evals/triage.py), through the real app over a real
embedded store holding two documents of corpus/ (those the first golden questions expect), the
real model and the extractive generator."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.assembly import build_ingester, build_store
from api.cli import app as kb
from api.keys import KeyStore, Role
from api.settings import Settings
from evals.report_html import STYLE_HASH
from evals.suite import Suite, run_lock
from evals.suite_data import DatasetError, load_golden_format
from evals.suite_runs import SERVICE_LOCK
from index.embedding import SentenceTransformerEmbedder
from index.errors import NotFoundError
from index.filelock import FileLock
from tests.serving import services

CORPUS = Path(__file__).parents[1] / "corpus"
DOCS = ("coe/data-retention-policy.md", "it/kaig-integration-playbook.md")
KEYS: dict[str, str] = {}
RUN_DEADLINE_S = 120  # a few extractive answers take seconds; this only bounds a hang


@pytest.fixture(scope="module")
def settings(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Settings:
    corpus = tmp_path_factory.mktemp("corpus")
    for doc in DOCS:
        (corpus / doc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / doc, corpus / doc)
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("data"),
        corpus_dir=corpus,
        today="2026-11-28",
        generator="extractive",
        serve_threads=2,  # torch threads are process-wide: leave the other tests theirs
        rate_limit_per_minute=0,
    )
    assert len(build_ingester(settings, build_store(settings), embedder).sync(corpus).added) == 2
    keys = KeyStore(settings.keys_path)
    for role in Role:
        KEYS[role.value] = keys.create(role.value, role)
    keys.close()
    return settings


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {KEYS['admin']}"
        yield test_client
        services(test_client).eval_runs.wait(RUN_DEADLINE_S)


def as_(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


def finished(client: TestClient, run_id: str) -> dict[str, Any]:
    """The run once it is no longer running (polled; fails after RUN_DEADLINE_S)."""
    deadline = time.monotonic() + RUN_DEADLINE_S
    while time.monotonic() < deadline:
        got = client.get(f"/v1/evals/runs/{run_id}")
        assert got.status_code == 200, got.text
        if got.json()["status"] != "running":
            return dict(got.json())
        time.sleep(0.2)
    pytest.fail(f"run {run_id} still running after {RUN_DEADLINE_S} s")


@pytest.fixture(scope="module")
def done_run(client: TestClient) -> dict[str, Any]:
    body = {
        "dataset": "golden",
        "generator": "extractive",
        "limit": 3,
        "set": {"answer_sources": 6},
    }
    started = client.post("/v1/evals/runs", json=body)
    assert started.status_code == 202, started.text
    assert started.json()["status"] == "running"
    assert started.json()["progress"]["total"] == 3
    return finished(client, started.json()["id"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/evals/runs"),
        ("post", "/v1/evals/runs"),
        ("get", "/v1/evals/runs/x"),
        ("get", "/v1/evals/runs/x/report"),
    ],
)
@pytest.mark.parametrize("role", ["reader", "spoke"])
def test_eval_routes_need_the_admin_role(
    client: TestClient, method: str, path: str, role: str
) -> None:
    response = client.request(method, path, headers=as_(role), json={"dataset": "golden"})
    assert response.status_code == 403
    assert "'admin' role" in response.json()["detail"]


def test_admin_lists_runs(client: TestClient) -> None:
    response = client.get("/v1/evals/runs", headers=as_("admin"))
    assert response.status_code == 200
    assert isinstance(response.json()["runs"], list)


def test_a_started_run_finishes_with_a_summary(
    client: TestClient, done_run: dict[str, Any]
) -> None:
    assert done_run["status"] == "complete"
    assert done_run["progress"] == {"done": 3, "total": 3}
    summary = done_run["summary"]
    assert summary["overrides"] == {"answer_sources": "6", "generator": "extractive"}  # as the CLI
    assert summary["configuration"]["answer_sources"] == 6
    assert summary["generator"] == "extractive"
    assert summary["metrics"]["overall"]["answerable"] == 2
    assert "hit@5" in summary["metrics"]["overall"]
    folder = services(client).eval_runs.folder(done_run["id"])
    assert len((folder / "records.jsonl").read_text(encoding="utf-8").splitlines()) == 3
    listed = {r["id"]: r for r in client.get("/v1/evals/runs").json()["runs"]}
    assert listed[done_run["id"]]["status"] == "complete"
    assert listed[done_run["id"]]["dataset"] == "golden"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"dataset": "golden", "set": {"answer_sourcez": 3}}, "answer_sourcez"),
        ({"dataset": "golden", "set": {"answer_sources": "many"}}, "answer_sources"),
        ({"dataset": "/etc/passwd"}, "unknown dataset"),
        ({"dataset": "golden", "generator": "gpt"}, "generator"),
        ({"dataset": "golden", "limit": 0}, "limit"),
    ],
)
def test_a_bad_request_is_422_naming_what_is_wrong(
    client: TestClient, body: dict[str, Any], named: str
) -> None:
    response = client.post("/v1/evals/runs", json=body)
    assert response.status_code == 422
    assert named in response.text


def test_a_second_run_while_one_runs_is_409(
    client: TestClient, done_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run is held at its first question until the second request has been
    refused: no timing involved."""
    gate, reached = _hold_first_question(monkeypatch)
    body = {"dataset": "golden", "generator": "extractive", "limit": 1}
    first = client.post("/v1/evals/runs", json=body)
    assert first.status_code == 202, first.text
    assert reached.wait(RUN_DEADLINE_S)
    assert client.get(f"/v1/evals/runs/{first.json()['id']}").json()["status"] == "running"
    second = client.post("/v1/evals/runs", json=body)
    gate.set()
    assert second.status_code == 409
    assert first.json()["id"] in second.json()["detail"]
    assert finished(client, first.json()["id"])["status"] == "complete"
    monkeypatch.undo()
    third = client.post("/v1/evals/runs", json=body)  # the lock was released
    assert third.status_code == 202, third.text
    assert finished(client, third.json()["id"])["status"] == "complete"


def _hold_first_question(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event]:
    """Suite.ask held at its first call until `gate` is set; `reached` says it got there."""
    gate, reached = threading.Event(), threading.Event()
    real_ask = Suite.ask

    def held(self: Suite, *args: Any) -> Any:
        reached.set()
        assert gate.wait(RUN_DEADLINE_S)
        return real_ask(self, *args)

    monkeypatch.setattr(Suite, "ask", held)
    return gate, reached


def test_a_run_in_another_process_makes_a_start_409(client: TestClient) -> None:
    """The lock another service process takes (its own open file on the same lock file)."""
    elsewhere = FileLock(services(client).eval_runs.runs_dir / SERVICE_LOCK)
    assert elsewhere.try_acquire()
    try:
        refused = client.post("/v1/evals/runs", json={"dataset": "golden", "limit": 1})
    finally:
        elsewhere.release()
    assert refused.status_code == 409
    assert "another process's run" in refused.json()["detail"]


def test_shutdown_ends_a_run_after_its_current_question(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service's shutdown stops the run between questions and waits for it: the summary
    says interrupted and holds the question that was being answered, nothing is lost."""
    gate, reached = _hold_first_question(monkeypatch)
    body = {"dataset": "golden", "generator": "extractive", "limit": 3}
    with TestClient(create_app(settings)) as own:
        own.headers["Authorization"] = f"Bearer {KEYS['admin']}"
        started = own.post("/v1/evals/runs", json=body)
        assert started.status_code == 202, started.text
        assert reached.wait(RUN_DEADLINE_S)
        folder = services(own).eval_runs.runs_dir / started.json()["id"]
        threading.Timer(0.5, gate.set).start()  # answered while the shutdown below waits
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "interrupted"
    assert (summary["recorded"], summary["questions"]) == (1, 3)
    assert len((folder / "records.jsonl").read_text(encoding="utf-8").splitlines()) == 1


def test_a_run_its_process_left_running_reads_as_interrupted(
    client: TestClient, done_run: dict[str, Any]
) -> None:
    runs = services(client).eval_runs
    left = runs.runs_dir / "golden-left-running"
    shutil.copytree(runs.folder(done_run["id"]), left)
    summary = json.loads((left / "summary.json").read_text(encoding="utf-8"))
    (left / "summary.json").write_text(json.dumps(summary | {"status": "running"}))
    assert client.get(f"/v1/evals/runs/{left.name}").json()["status"] == "interrupted"
    writer = run_lock(left)  # a live process answering into it holds its folder's lock
    assert writer.try_acquire()
    try:
        assert client.get(f"/v1/evals/runs/{left.name}").json()["status"] == "running"
    finally:
        writer.release()
        shutil.rmtree(left)


def test_the_report_is_html_with_the_pages_headers(
    client: TestClient, done_run: dict[str, Any]
) -> None:
    response = client.get(f"/v1/evals/runs/{done_run['id']}/report")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert f"style-src 'self' {STYLE_HASH}" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.text.count("<svg ") == 5
    assert f"Evaluation report: {done_run['id']}" in response.text


@pytest.mark.parametrize(
    "run_id",
    ["nope", "..", "...", ".hidden", "%2e%2e", "..%2F..%2Fkeys.sqlite", "%2E%2E%5Cchroma"],
)
def test_an_unknown_or_escaping_run_id_is_404(
    client: TestClient, done_run: dict[str, Any], run_id: str
) -> None:
    data = services(client).eval_runs.folder(done_run["id"]).parents[1]
    outside = data / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "summary.json").write_text(json.dumps({"status": "complete"}), encoding="utf-8")
    for path in (f"/v1/evals/runs/{run_id}", f"/v1/evals/runs/{run_id}/report"):
        assert client.get(path).status_code == 404, path
    assert client.get("/v1/evals/runs/..%2Foutside").status_code == 404
    for bad in ("..", "../outside", f"{done_run['id']}/..", str(outside)):  # past the router
        with pytest.raises(NotFoundError):
            services(client).eval_runs.folder(bad)
    assert client.get(f"/v1/evals/runs/{done_run['id']}/report?baseline=..").status_code == 404


# -- triage of thumbs down ----------------------------------------------------------------------

RETENTION = "How long are chat logs from the AI assistant kept?"
GATEWAY = "What must a team do before integrating with the KAIG gateway?"


def _ask_and_rate(
    client: TestClient, question: str, rating: str, reason: str | None = None, comment: str = ""
) -> dict[str, Any]:
    asked = client.post("/v1/ask", json={"question": question}, headers=as_("reader"))
    assert asked.status_code == 200, asked.text
    answer = dict(asked.json())
    feedback = {"answer_id": answer["answer_id"], "rating": rating, "reason": reason}
    rated = client.post(
        "/v1/feedback", json=feedback | {"comment": comment or None}, headers=as_("reader")
    )
    assert rated.status_code == 201, rated.text
    return answer


def _triage(settings: Settings, out: Path) -> dict[str, Any]:
    """`kb eval triage` on the service's data folder."""
    env = {"KB_DATA_DIR": str(settings.data_dir), "KB_TODAY": "2026-11-28"}
    done = CliRunner().invoke(kb, ["eval", "triage", "--out", str(out), "--json"], env=env)
    assert done.exit_code == 0, done.output
    return dict(json.loads(done.output))


def test_thumbs_down_become_candidate_cases_once(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    first = _ask_and_rate(client, RETENTION, "down", "incomplete", "no retention period given")
    again = _ask_and_rate(client, "  how long are CHAT LOGS from the AI assistant kept ", "down")
    _ask_and_rate(client, GATEWAY, "up")  # a thumbs up is not a case
    out = tmp_path / "triage.jsonl"

    result = _triage(settings, out)
    assert [c["question"] for c in result["added"]] == [RETENTION]
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 1
    (case,) = lines
    assert case["needs_review"] is True
    assert case["key_facts"] == case["expected_docs"] == []
    assert case["to_complete"] == ["type", "expected_docs", "key_facts", "reference_answer"]
    triage = case["triage"]
    assert triage["count"] == 2
    assert triage["answer_ids"] == [first["answer_id"], again["answer_id"]]
    assert triage["reasons"] == ["incomplete"]
    assert triage["comments"] == ["no retention period given"]
    cited = {c["doc_id"] for a in (first, again) for c in a["citations"]}
    assert triage["cited"] == sorted(cited)
    assert triage["refused"] == sum(a["refused"] for a in (first, again))
    with pytest.raises(DatasetError, match="needs_review"):
        load_golden_format(out)  # not runnable before review

    before = out.read_text(encoding="utf-8")
    rerun = _triage(settings, out)
    assert rerun["added"] == []
    assert rerun["known"] == 1
    assert out.read_text(encoding="utf-8") == before

    _ask_and_rate(client, GATEWAY, "down", "wrong_source")
    third = _triage(settings, out)
    assert [c["question"] for c in third["added"]] == [GATEWAY]
    assert third["known"] == 1
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2


def test_an_adopted_candidate_loads_as_a_case(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    """The adopt step of evals/README.md: complete the fields, drop the triage keys."""
    _ask_and_rate(client, RETENTION, "down", "outdated")
    out = tmp_path / "triage.jsonl"
    _triage(settings, out)
    case = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    for key in ("needs_review", "to_complete", "triage"):
        del case[key]
    case |= {
        "type": "single_fact",
        "expected_docs": ["data-retention-policy"],
        "key_facts": ["90 days"],
        "reference_answer": "Chat logs are kept for 90 days.",
    }
    adopted = tmp_path / "adopted.jsonl"
    adopted.write_text(json.dumps(case) + "\n", encoding="utf-8")
    (question,) = load_golden_format(adopted)
    assert question.question == RETENTION
    assert question.answerable
