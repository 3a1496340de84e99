"""Knowledge-base health (`GET /v1/health/kb`, `kb health`) over part of the shipped corpus and
documents written here, a real embedded store, the real query log, and the app with keys of
different roles and groups. Expected counts are computed here from the files' own metadata."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import app as kb_app
from assistant.querylog import Asker
from assistant.service import Answer
from index.embedding import SentenceTransformerEmbedder
from tests.conftest import write
from tests.project_corpus import TODAY, copy_corpus, ingest_with_keys, kb_settings
from tests.serving import services

KEYS: dict[str, str] = {}
# docs/metadata.md: review intervals by type, when a document gives none
INTERVALS = {
    "policy": 365,
    "playbook": 180,
    "vendor_evaluation": 180,
    "faq": 180,
    "template": 365,
    "lessons_learned": 730,
    "showcase": 730,
    "reference": 365,
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_corpus(tmp_path_factory.mktemp("space") / "corpus")
    # no metadata at all: department from the folder, type `reference`, owner unknown
    write(root / "it" / "scratch-notes.md", "# Scratch notes\n\nThe gateway keeps logs.\n")
    write(
        root / "coe" / "old-intake.md",
        "---\nid: old-intake\ndoc_type: playbook\nowner: AI CoE\nstatus: superseded\n"
        "last_reviewed: 2023-01-01\n---\n# Old intake\n\nSend an e-mail to the CoE.\n",
    )
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def client(folder: Path, data: Path, embedder: SentenceTransformerEmbedder) -> Iterator[TestClient]:
    settings = kb_settings(folder, data)
    KEYS.update(ingest_with_keys(settings, folder, embedder))
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def health(client: TestClient, who: str, **params: Any) -> Any:
    response = client.get(
        "/v1/health/kb", params=params, headers={"Authorization": f"Bearer {KEYS[who]}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


# -- what the files say, read here without the product's code --------------------------------


def metadata_of(folder: Path) -> list[dict[str, Any]]:
    """Every document's metadata, from its front matter, with the neutral values of a file
    that has none (docs/metadata.md)."""
    found = []
    for path in sorted(folder.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        meta = yaml.safe_load(text.split("---\n")[1]) if text.startswith("---\n") else {}
        found.append(
            {
                "department": meta.get("department", path.parent.name),
                "doc_type": meta.get("doc_type", "reference"),
                "owner": meta.get("owner", "unknown"),
                "status": meta.get("status", "approved"),
                "access": [meta["access"]]
                if isinstance(meta.get("access"), str)
                else meta.get("access", ["all"]),
                "last_reviewed": meta.get("last_reviewed"),
                "id": meta.get("id", path.stem),
            }
        )
    return found


def stale(meta: dict[str, Any], today: dt.date) -> bool:
    reviewed = meta["last_reviewed"]
    return reviewed is not None and today > reviewed + dt.timedelta(
        days=INTERVALS[meta["doc_type"]]
    )


def counts(values: list[str]) -> list[dict[str, Any]]:
    return [
        {"value": v, "count": n}
        for v, n in sorted(Counter(values).items(), key=lambda vn: (-vn[1], vn[0]))
    ]


# -- the tests ----------------------------------------------------------------------------------


def test_health_counts_what_the_files_hold_within_the_callers_access(
    client: TestClient, folder: Path
) -> None:
    everything = metadata_of(folder)
    finance = [m for m in everything if {"all", "finance"} & set(m["access"])]
    assert len(finance) < len(everything)  # some documents are not the finance spoke's
    today = dt.date.fromisoformat(TODAY)
    for who, docs in (("admin", everything), ("finance_spoke", finance)):
        report = health(client, who)
        assert report["documents"] == len(docs), who
        assert report["by_department"] == counts([m["department"] for m in docs]), who
        assert report["by_type"] == counts([m["doc_type"] for m in docs]), who
        assert report["by_status"] == counts([m["status"] for m in docs]), who
        active = [m for m in docs if m["status"] not in {"superseded", "retired"}]
        overdue = [m for m in active if stale(m, today)]
        assert overdue, who  # the corpus has documents past their review date
        assert report["stale"]["active"] == len(active), who
        assert report["stale"]["stale"] == len(overdue), who
        assert report["stale"]["share"] == round(len(overdue) / len(active), 4), who
        assert report["stale"]["target"] == 0.1
        assert report["stale"]["over_target"] == (len(overdue) / len(active) > 0.1)
        assert report["without_owner"] == sorted(m["id"] for m in docs if m["owner"] == "unknown")
        assert report["today"] == TODAY
    assert "scratch-notes" in health(client, "admin")["without_owner"]


def test_readers_may_not_see_health(client: TestClient) -> None:
    for who in ("finance_reader", "hr_reader"):
        response = client.get("/v1/health/kb", headers={"Authorization": f"Bearer {KEYS[who]}"})
        assert response.status_code == 403
        assert "spoke" in response.json()["detail"]
    assert TestClient(client.app).get("/v1/health/kb").status_code == 401


def test_usage_counts_questions_refusals_and_thumbs_down(client: TestClient) -> None:
    before = health(client, "admin", days=7)
    reader = {"Authorization": f"Bearer {KEYS['finance_reader']}"}
    answered = client.post(
        "/v1/ask",
        json={"question": "Why did finance stop the receipt OCR experiment?"},
        headers=reader,
    ).json()
    refused = client.post(
        "/v1/ask", json={"question": "Which band plays at the summer party?"}, headers=reader
    ).json()
    assert (answered["refused"], refused["refused"]) == (False, True)
    down = {"answer_id": answered["answer_id"], "rating": "down", "reason": "outdated"}
    assert client.post("/v1/feedback", json=down, headers=reader).status_code == 201
    up = {"answer_id": refused["answer_id"], "rating": "up"}
    assert client.post("/v1/feedback", json=up, headers=reader).status_code == 201

    after = health(client, "admin", days=7)
    usage, was = after["usage"], before["usage"]
    assert (usage["questions"], usage["refused"]) == (was["questions"] + 2, was["refused"] + 1)
    assert (usage["rated"], usage["thumbs_down"]) == (was["rated"] + 2, was["thumbs_down"] + 1)
    assert usage["refusal_rate"] == round(usage["refused"] / usage["questions"], 4)
    assert usage["thumbs_down_rate"] == round(usage["thumbs_down"] / usage["rated"], 4)
    days = [d["day"] for d in usage["per_day"]]
    utc_today = dt.datetime.now(dt.UTC).date()
    assert days == [(utc_today - dt.timedelta(days=6 - i)).isoformat() for i in range(7)]
    assert usage["per_day"][-1]["questions"] == was["per_day"][-1]["questions"] + 2
    assert sum(d["questions"] for d in usage["per_day"]) == usage["questions"]
    gaps = {g["question"]: g for g in after["top_gaps"]}
    assert "Which band plays at the summer party?" in gaps


def test_gaps_name_only_documents_the_caller_may_read(client: TestClient) -> None:
    question = "What did the CV screening bias audit conclude for Gdansk?"
    restricted = "hr-cv-screening-bias-audit"  # hr only
    answer = Answer(
        question=question,
        standalone_question=question,
        answer="",
        refused=True,
        citations=[],
        warnings=[],
        nearby=[
            {"doc_id": restricted, "title": "CV screening pilot - bias audit findings"},
            {"doc_id": "hr-cv-screening-lessons", "title": "Lessons learned: CV screening"},
        ],
        refusal_reason="nothing relevant",
    )
    services(client).query_log.record(answer, Asker("x", admin=True), route="ask", latency_ms=1)
    admin = {g["question"]: g for g in health(client, "admin", gaps=50)["top_gaps"]}
    assert admin[question]["nearby"] == [restricted, "hr-cv-screening-lessons"]
    spoke = {g["question"]: g for g in health(client, "finance_spoke", gaps=50)["top_gaps"]}
    assert spoke[question]["nearby"] == ["hr-cv-screening-lessons"]


def eval_run(folder: Path, dataset: str, status: str, written_at: str, hit: float) -> None:
    """A run folder as `kb eval run` leaves it (evals/suite.py: summary.json)."""
    folder.mkdir(parents=True)
    summary = {
        "status": status,
        "dataset": {"name": dataset, "path": f"evals/datasets/{dataset}.jsonl"},
        "generator": "extractive",
        "written_at": written_at,
        "questions": 30,
        "recorded": 30 if status == "complete" else 12,
        "metrics": {"overall": {"questions": 30, "hit_at_5": hit, "refusal_accuracy": 0.9}},
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")


def test_latest_evaluation_run_of_each_dataset_and_stale_share_by_day(
    client: TestClient, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert health(client, "admin")["evaluations"] == []
    runs = data / "evals"
    eval_run(
        runs / "golden-20261101-090000", "golden", "complete", "2026-11-01T09:10:00+00:00", 0.9
    )
    eval_run(
        runs / "golden-20261120-090000", "golden", "complete", "2026-11-20T09:10:00+00:00", 0.95
    )
    eval_run(
        runs / "golden-20261125-090000", "golden", "interrupted", "2026-11-25T09:01:00+00:00", 0.5
    )
    eval_run(
        runs / "employee-20261010-090000", "employee", "running", "2026-10-10T09:00:00+00:00", 0.7
    )
    (runs / "broken").mkdir()
    (runs / "broken" / "summary.json").write_text("{not json", encoding="utf-8")
    found = health(client, "admin")["evaluations"]
    assert [(r["dataset"], r["status"], r["scores"]["hit_at_5"]) for r in found] == [
        ("employee", "running", 0.7),
        ("golden", "complete", 0.95),  # the latest complete run, not the interrupted one after it
    ]
    assert found[1]["folder"].endswith("golden-20261120-090000")

    # `kb health` reads the same store, with review dates judged on KB_TODAY
    monkeypatch.setenv("KB_DATA_DIR", str(data))
    shares = {}
    for day in (TODAY, "2028-06-30"):
        monkeypatch.setenv("KB_TODAY", day)
        run = CliRunner().invoke(kb_app, ["health", "--json"])
        assert run.exit_code == 0, run.output
        shares[day] = json.loads(run.stdout)["stale"]
    assert shares[TODAY] == health(client, "admin")["stale"]
    assert shares["2028-06-30"]["stale"] > shares[TODAY]["stale"]
    assert shares["2028-06-30"]["share"] > shares[TODAY]["share"]
    printed = CliRunner().invoke(kb_app, ["health"])
    assert printed.exit_code == 0, printed.output
    assert "stale:" in printed.stdout
    assert "eval golden (complete" in printed.stdout
