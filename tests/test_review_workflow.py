"""The review workflow over the shipped corpus, a real embedded store, the real model and the
real app (KB_TODAY 2026-11-28): marking documents reviewed (who may, which date), the effect on
every view at once, reviews surviving re-ingestion until the file changes, the audit log, and
the review queue's urgency ranking."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.assembly import build_embedder, build_ingester, build_review_store, build_store
from api.keys import KeyStore, Role
from api.settings import Settings
from assistant.audit import AuditAction, AuditLog
from assistant.querylog import DocumentUse
from assistant.review import OUTDATED_BOOST_DAYS, review_queue, urgency
from index.records import DocumentMeta, DocumentRecord
from index.reviews import StoredReview
from tests.conftest import markdown, write
from tests.serving import ingest_held, services
from tests.test_cli import kb

CORPUS = Path(__file__).parents[1] / "corpus"
TODAY = dt.date(2026, 11, 28)
KEYS: dict[str, str] = {}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("space") / "corpus"
    shutil.copytree(CORPUS, copy)
    return copy


@pytest.fixture(scope="module")
def settings(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        corpus_dir=corpus,
        today=TODAY.isoformat(),
        generator="extractive",
        serve_threads=2,  # torch threads are process-wide: leave the other tests theirs
        rate_limit_per_minute=0,
    )


@pytest.fixture(scope="module")
def client(settings: Settings, corpus: Path) -> Iterator[TestClient]:
    store = build_store(settings)
    report = build_ingester(settings, store, build_embedder(settings)).sync(corpus)
    assert report.failed == []
    keys = KeyStore(settings.keys_path)
    KEYS.update(
        admin=keys.create("admin", Role.ADMIN),
        reader=keys.create("reader", Role.READER),
        spoke=keys.create("finance spoke", Role.SPOKE, ["finance"]),
        priya=keys.create("Priya  Raman", Role.READER),  # the owner, spacing aside
    )
    keys.close()
    with TestClient(create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {KEYS['admin']}"
        yield test_client


def as_(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who]}"}


def key_id(who: str) -> str:
    return KEYS[who].split("_")[1]


def queued(client: TestClient) -> dict[str, dict[str, Any]]:
    queue = client.get("/v1/documents/stale").json()
    return {d["doc_id"]: d for owner in queue for d in owner["documents"]}


def document(client: TestClient, doc_id: str) -> dict[str, Any]:
    found: dict[str, Any] = client.get(f"/v1/documents/{doc_id}").json()
    return found


def hits(client: TestClient, query: str, **filters: Any) -> dict[str, bool]:
    """doc id -> is_stale of each hit of a search as the admin."""
    body = {"query": query, "k": 10, "filters": filters, "facets": []}
    response = client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    return {h["doc_id"]: h["is_stale"] for h in response.json()["hits"]}


def chunk_review_dates(client: TestClient, doc_id: str) -> set[tuple[str, str, int]]:
    """(review_date, last_reviewed, review_date_day) over every chunk of the document."""
    chunks = services(client).store.document_chunks(doc_id)
    assert chunks
    return {
        (str(md["review_date"]), str(md.get("last_reviewed")), int(md["review_date_day"]))
        for _, _, md in chunks
    }


def review(client: TestClient, doc_id: str, body: dict[str, Any] | None, who: str) -> Any:
    return client.post(f"/v1/documents/{doc_id}/review", json=body, headers=as_(who))


# -- marking reviewed, and what every view sees ------------------------------------------------


def test_owner_marks_reviewed_and_every_view_sees_it_at_once(client: TestClient) -> None:
    question = {"question": "When is the Finance AI drop-in and where?"}
    before = client.post("/v1/ask", json=question).json()
    cited = {c["doc_id"]: c for c in before["citations"]}
    assert cited["finance-ai-faq"]["stale"] is True
    assert any("Finance AI FAQ" in w for w in before["warnings"])
    assert queued(client)["finance-ai-faq"]["days_overdue"] == 497  # 2025-07-19 to 2026-11-28
    assert hits(client, "Finance AI drop-in")["finance-ai-faq"] is True
    assert "finance-ai-faq" in hits(client, "Finance AI drop-in", stale=True)

    response = review(client, "finance-ai-faq", {"note": "  drop-in times checked "}, "priya")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "doc_id": "finance-ai-faq",
        "title": "Finance AI FAQ",
        "owner": "Priya Raman",
        "last_reviewed": "2026-11-28",
        "review_date": "2027-05-27",  # today + 180 days, the FAQ interval
        "previous_review_date": "2025-07-19",
        "stale": False,
        "note": "drop-in times checked",
        "reviewed_by": key_id("priya"),
    }

    detail = document(client, "finance-ai-faq")
    assert (detail["stale"], detail["review_date"]) == (False, "2027-05-27")
    day = dt.date(2027, 5, 27).toordinal()
    assert chunk_review_dates(client, "finance-ai-faq") == {("2027-05-27", "2026-11-28", day)}
    assert "finance-ai-faq" not in queued(client)
    assert hits(client, "Finance AI drop-in")["finance-ai-faq"] is False
    assert "finance-ai-faq" not in hits(client, "Finance AI drop-in", stale=True)
    assert "finance-ai-faq" in hits(client, "Finance AI drop-in", stale=False)
    assert "finance-ai-faq" in hits(client, "Finance AI drop-in", reviewed_from="2026-11-28")
    after = client.post("/v1/ask", json=question).json()
    cited = {c["doc_id"]: c for c in after["citations"]}
    assert cited["finance-ai-faq"]["stale"] is False
    assert cited["finance-ai-faq"]["review_date"] == "2027-05-27"
    assert not any("Finance AI FAQ" in w for w in after["warnings"])


def test_an_explicit_date_and_a_later_file_date(client: TestClient) -> None:
    body = {"review_date": "2027-03-31"}
    response = review(client, "localisation-mt-playbook", body, "admin")
    assert response.status_code == 200, response.text
    assert (response.json()["review_date"], response.json()["stale"]) == ("2027-03-31", False)
    assert document(client, "localisation-mt-playbook")["review_date"] == "2027-03-31"
    # reviewed again, sooner: the later review replaces the earlier one
    response = review(client, "localisation-mt-playbook", {"review_date": "2026-12-31"}, "admin")
    assert response.json()["review_date"] == "2026-12-31"
    assert response.json()["previous_review_date"] == "2027-03-31"
    # the file's own date (2027-07-01) is later than the one asked for: it stays
    policy = review(client, "ai-use-policy", {"review_date": "2026-12-31"}, "admin").json()
    assert (policy["review_date"], policy["previous_review_date"]) == ("2027-07-01", "2027-07-01")
    assert policy["last_reviewed"] == "2026-11-28"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"review_date": "2026-11-01"}, "2026-11-01 is not in the future (today is 2026-11-28)"),
        ({"review_date": "2026-11-28"}, "2026-11-28 is not in the future"),
        ({"review_date": "soon"}, "review_date"),
        ({"until": "2027-01-01"}, "until"),
        ({"note": "x" * 2001}, "note"),
    ],
)
def test_bad_dates_and_fields_are_422_and_change_nothing(
    client: TestClient, body: dict[str, Any], needle: str
) -> None:
    response = review(client, "quillmark-vendor-evaluation", body, "admin")
    assert response.status_code == 422, response.text
    assert needle in response.text  # problem details, or FastAPI's list naming the field
    assert document(client, "quillmark-vendor-evaluation")["review_date"] == "2025-05-17"


def test_only_the_owner_or_an_admin_and_unreadable_is_unknown(client: TestClient) -> None:
    for who in ("reader", "spoke"):  # the spoke reads finance, but owns nothing
        response = review(client, "expense-receipt-ocr-lessons", {}, who)
        assert response.status_code == 403, response.text
        assert "only its owner ('Priya Raman') or an admin" in response.json()["detail"]
    unknown = review(client, "no-such-doc", {}, "priya")
    hidden = review(client, "ap-fraud-controls-internal", {}, "priya")  # finance-only
    assert unknown.status_code == hidden.status_code == 404
    assert hidden.json()["detail"] == unknown.json()["detail"].replace(
        "no-such-doc", "ap-fraud-controls-internal"
    )
    assert document(client, "ap-fraud-controls-internal")["review_date"] == "2027-04-17"
    assert TestClient(client.app).post("/v1/documents/x/review").status_code == 401
    # no body at all is today + the interval (lessons learned: 730 days)
    response = client.post("/v1/documents/expense-receipt-ocr-lessons/review", headers=as_("priya"))
    assert response.status_code == 200, response.text
    assert response.json()["review_date"] == "2028-11-27"


def test_a_review_is_refused_while_a_sync_runs(client: TestClient) -> None:
    with ingest_held(client):
        response = review(client, "quillmark-vendor-evaluation", {}, "admin")
    assert response.status_code == 409
    assert "another upload or sync is running" in response.json()["detail"]


# -- surviving re-ingestion ---------------------------------------------------------------------


def test_review_survives_reingest_until_the_file_changes(client: TestClient, corpus: Path) -> None:
    doc = "model-selection-playbook"
    assert review(client, doc, {"review_date": "2027-02-01"}, "admin").status_code == 200
    report = client.post("/v1/sync").json()
    assert doc in {e["doc_id"] for e in report["unchanged"]}
    assert document(client, doc)["review_date"] == "2027-02-01"
    assert {d[0] for d in chunk_review_dates(client, doc)} == {"2027-02-01"}

    # the same content written again (a store repair asked for it): the review is applied
    services(client).store.mark_for_resync([doc])
    report = client.post("/v1/sync").json()
    assert [e["doc_id"] for e in report["updated"]] == [doc]
    assert (document(client, doc)["review_date"], document(client, doc)["stale"]) == (
        "2027-02-01",
        False,
    )
    assert {d[0] for d in chunk_review_dates(client, doc)} == {"2027-02-01"}
    assert doc not in queued(client)

    # the file changes: its own metadata wins again
    path = corpus / "coe" / "model-selection-playbook.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
    report = client.post("/v1/sync").json()
    assert [e["doc_id"] for e in report["updated"]] == [doc]
    assert (document(client, doc)["review_date"], document(client, doc)["stale"]) == (
        "2025-11-08",
        True,
    )
    assert {d[0] for d in chunk_review_dates(client, doc)} == {"2025-11-08"}
    assert hits(client, "choosing a model for your use case")[doc] is True
    assert queued(client)[doc]["days_overdue"] == 385


def test_a_review_interrupted_before_the_store_is_completed_by_the_next_sync(
    client: TestClient, settings: Settings
) -> None:
    doc = "ticket-summary-pilot-playbook"
    record = services(client).store.document(doc)
    assert record is not None
    build_review_store(settings).save(  # stored, then the process died: the store is as before
        StoredReview(
            doc_id=doc,
            content_hash=record.content_hash,
            reviewed_on=TODAY,
            review_date=dt.date(2027, 1, 15),
            file_review_date=record.meta.review_date,
            note=None,
            reviewed_by="cli:test",
            at=dt.datetime.now(dt.UTC),
        )
    )
    assert document(client, doc)["stale"] is True
    report = client.post("/v1/sync").json()
    assert doc in {e["doc_id"] for e in report["unchanged"]}
    assert (document(client, doc)["review_date"], document(client, doc)["stale"]) == (
        "2027-01-15",
        False,
    )
    assert {d[0] for d in chunk_review_dates(client, doc)} == {"2027-01-15"}
    assert doc not in queued(client)


# -- the audit log --------------------------------------------------------------------------------


def test_audit_log_records_reviews_uploads_and_syncs(client: TestClient) -> None:
    upload = client.post(
        "/v1/documents",
        files=[("files", ("heron.md", b"# Heron\n\nHeron sorts invoices by supplier.\n"))],
        data={"metadata": '{"department": "coe", "owner": "Priya Raman", "doc_type": "faq"}'},
    )
    assert upload.status_code == 200, upload.text
    for who in ("reader", "spoke"):
        assert client.get("/v1/audit", headers=as_(who)).status_code == 403
    entries = client.get("/v1/audit").json()
    assert entries[0]["action"] == "upload"
    assert (entries[0]["who"], entries[0]["target"]) == (key_id("admin"), "heron")
    assert entries[0]["details"]["added"] == ["heron"]
    assert entries[0]["details"]["files"] == ["heron.md"]
    times = [e["when"] for e in entries]
    assert times == sorted(times, reverse=True)  # newest first
    assert {"review", "sync", "upload"} <= {e["action"] for e in entries}
    assert not any(secret in str(entries) for secret in KEYS.values())

    reviews = client.get("/v1/audit", params={"action": "review", "limit": 50}).json()
    assert {e["action"] for e in reviews} == {"review"}
    owner_review = next(e for e in reviews if e["target"] == "finance-ai-faq")
    assert owner_review["who"] == key_id("priya")
    assert owner_review["details"]["review_date"] == "2027-05-27"
    assert owner_review["details"]["previous_review_date"] == "2025-07-19"
    assert owner_review["details"]["note"] == "drop-in times checked"
    assert len(client.get("/v1/audit", params={"limit": 2}).json()) == 2
    assert client.get("/v1/audit", params={"since": "2999-01-01"}).json() == []
    bad = client.get("/v1/audit", params={"action": "delete"})
    assert bad.status_code == 422
    assert "action" in bad.text


def test_audit_log_skips_a_line_cut_short_and_filters_by_day(tmp_path: Path) -> None:
    days = iter([dt.datetime(2026, 11, d, 9, tzinfo=dt.UTC) for d in (1, 2, 3)])
    log = AuditLog(tmp_path / "audit.jsonl", clock=lambda: next(days))
    log.append("cli:ana", AuditAction.INGEST, "/kb", {"added": ["a"]})
    log.append("3f9c01ab", AuditAction.KEY_CREATE, "0a1b2c3d", {"role": "reader"})
    with (tmp_path / "audit.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"when": "2026-11-0')  # a crash mid-line
    assert [e.target for e in log.read()] == ["0a1b2c3d", "/kb"]
    log.append("cli:ana", AuditAction.REVIEW, "doc", {})
    assert [e.target for e in log.read(since=dt.date(2026, 11, 2))] == ["doc", "0a1b2c3d"]
    assert [e.who for e in log.read(action=AuditAction.INGEST)] == ["cli:ana"]


# -- urgency ------------------------------------------------------------------------------------


def _record(doc_id: str, owner: str, last_reviewed: str | None) -> DocumentRecord:
    meta = DocumentMeta(
        id=doc_id,
        title=doc_id,
        doc_type="faq",  # 180 days
        department="coe",
        owner=owner,
        last_reviewed=last_reviewed,
    )
    return DocumentRecord(meta, f"{doc_id}.md", "/kb", "markdown", "h", 1, dt.datetime.now(dt.UTC))


def test_urgency_ranks_by_overdue_times_recent_use_plus_outdated_reports() -> None:
    assert urgency(100, 0, 0) == 100
    assert urgency(100, 3, 0) == 400
    assert urgency(100, 3, 2) == 400 + 2 * OUTDATED_BOOST_DAYS
    assert urgency(0, 5, 1) == OUTDATED_BOOST_DAYS  # only needs an owner
    records = [
        _record("old-unread", "Ana", "2025-01-01"),  # 516 days overdue, never cited
        _record("read-a-lot", "Ana", "2026-03-03"),  # 90 days overdue, cited 9 times lately
        _record("flagged", "Ben", "2026-05-02"),  # 30 days overdue, 1 cite, 2 "outdated"
        _record("orphan", "unknown", None),  # needs an owner
        _record("current", "Ben", "2026-10-01"),  # not due: not queued
    ]
    recent = {
        "read-a-lot": DocumentUse("read-a-lot", 9, 0),
        "flagged": DocumentUse("flagged", 1, 2, 2),
        "old-unread": DocumentUse("old-unread", 0, 0),
    }
    use = {**recent, "old-unread": DocumentUse("old-unread", 40, 3)}  # all time: long ago
    queue = review_queue(records, TODAY, use, recent)
    ranked = [(q.owner, [(d.doc_id, d.urgency) for d in q.documents]) for q in queue]
    assert ranked == [
        ("Ana", [("read-a-lot", 900), ("old-unread", 516)]),
        ("Ben", [("flagged", 30 * 2 + 2 * OUTDATED_BOOST_DAYS)]),
        ("unknown", [("orphan", 0)]),
    ]
    old = queue[0].documents[1]
    assert (old.cited, old.thumbs_down, old.cited_recently) == (40, 3, 0)


def test_the_queue_ranks_documents_answers_rely_on_first(client: TestClient) -> None:
    before = queued(client)["convai-labs-vendor-evaluation"]
    question = {"question": "What did the ConvAI Labs vendor evaluation recommend?"}
    for _ in range(2):
        answer = client.post("/v1/ask", json=question, headers=as_("reader")).json()
        assert "convai-labs-vendor-evaluation" in {c["doc_id"] for c in answer["citations"]}
        down = {"answer_id": answer["answer_id"], "rating": "down", "reason": "outdated"}
        assert client.post("/v1/feedback", json=down, headers=as_("reader")).status_code == 201
    after = queued(client)
    convai = after["convai-labs-vendor-evaluation"]
    assert convai["cited_recently"] == before["cited_recently"] + 2
    assert convai["outdated"] == before["outdated"] + 2
    assert convai["urgency"] == urgency(
        convai["days_overdue"], convai["cited_recently"], convai["outdated"]
    )
    assert convai["urgency"] > convai["days_overdue"] * 3  # it jumped
    for entry in after.values():  # every key the queue had, and urgency
        assert entry["urgency"] == urgency(
            entry["days_overdue"], entry["cited_recently"], entry["outdated"]
        )
    queue = client.get("/v1/documents/stale").json()
    for owner in queue:
        scores = [d["urgency"] for d in owner["documents"]]
        assert scores == sorted(scores, reverse=True)
    tops = [owner["documents"][0]["urgency"] for owner in queue]
    assert tops == sorted(tops, reverse=True)
    assert {"days_overdue", "cited", "thumbs_down", "needs_owner", "review_date"} <= set(convai)


# -- the command line -----------------------------------------------------------------------------


def test_kb_review_stale_and_audit_commands(tmp_path: Path) -> None:
    tree, data = tmp_path / "docs", tmp_path / "data"
    write(
        tree / "finance" / "faq.md",
        markdown(
            "fin-faq", "# Finance FAQ\n\nAsk Priya.", doc_type="faq", last_reviewed="2025-01-01"
        ),
    )
    write(tree / "coe" / "intake.md", markdown("intake", "# Intake\n\nSubmit the AI-01 form."))
    assert kb(data, "ingest", str(tree), "--json").returncode == 0

    sheet = tmp_path / "queue.csv"
    listed = kb(data, "stale", "--csv", str(sheet))
    assert listed.returncode == 0, listed.stderr
    assert "Test Owner" in listed.stdout
    assert "fin-faq" in listed.stdout
    rows = sheet.read_text(encoding="utf-8").splitlines()
    assert rows[0] == (
        "owner,doc_id,title,path,department,doc_type,review_date,days_overdue,cited,"
        "thumbs_down,needs_owner,urgency"
    )
    assert rows[1:] == [
        "Test Owner,fin-faq,Finance FAQ,finance/faq.md,finance,faq,2025-06-30,516,0,0,False,516"
    ]

    past = kb(data, "review", "fin-faq", "--until", "2026-01-01")
    assert past.returncode == 2
    assert "parameter '--until': 2026-01-01 is not in the future" in past.stderr
    unknown = kb(data, "review", "nope")
    assert (unknown.returncode, "no document 'nope'" in unknown.stderr) == (2, True)
    done = kb(data, "review", "fin-faq", "--note", "checked", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["review_date"], result["stale"], result["note"]) == (
        "2027-05-27",
        False,
        "checked",
    )
    assert result["reviewed_by"].startswith("cli:")
    assert json.loads(kb(data, "stale", "--json").stdout) == []
    assert "the review queue is empty" in kb(data, "stale").stdout

    again = json.loads(kb(data, "ingest", str(tree), "--json").stdout)
    assert len(again["unchanged"]) == 2
    docs = {d["doc_id"]: d for d in json.loads(kb(data, "docs", "--json").stdout)}
    assert (docs["fin-faq"]["review_date"], docs["fin-faq"]["stale"]) == ("2027-05-27", False)

    created = json.loads(kb(data, "keys", "create", "--name", "bot", "--json").stdout)
    assert kb(data, "keys", "revoke", created["key_id"]).returncode == 0
    log = kb(data, "audit", "--json")
    assert log.returncode == 0, log.stderr
    entries = json.loads(log.stdout)
    assert [e["action"] for e in entries] == [
        "key_revoke",
        "key_create",
        "ingest",
        "review",
        "ingest",
    ]
    assert all(e["who"] == result["reviewed_by"] for e in entries)
    assert entries[1]["details"] == {"name": "bot", "role": "reader", "groups": []}
    assert entries[1]["target"] == created["key_id"]
    assert created["key"] not in log.stdout
    assert entries[2]["details"]["unchanged"] == 2
    assert sorted(entries[4]["details"]["added"]) == ["fin-faq", "intake"]
    only = json.loads(kb(data, "audit", "--action", "review", "--json").stdout)
    assert [e["target"] for e in only] == ["fin-faq"]
    assert json.loads(kb(data, "audit", "--since", "2999-01-01", "--json").stdout) == []
    assert "key_revoke" in kb(data, "audit", "--limit", "1").stdout
