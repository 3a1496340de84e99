"""Admin ingestion over HTTP (uploads, sync) and request size limits, over a real embedded store
with the real model and real files of every format."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from api.app import create_app
from api.assembly import build_embedder, build_ingester, build_store
from api.keys import KeyStore, Role
from api.limits import BodySizeLimit, Limit
from api.settings import Settings
from api.uploads import MAX_FILES
from index.embedding import SentenceTransformerEmbedder
from index.store import ChromaStore
from ingest.sync import Ingester
from tests.conftest import markdown, write
from tests.samples import make_docx, make_html, make_pdf
from tests.serving import ingest_held, services

UPLOAD_MAX = 300_000
KEYS: dict[str, str] = {}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("space") / "corpus"


@pytest.fixture(scope="module")
def client(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    write(
        corpus / "legal" / "clauses.md",
        markdown("clauses", "# Contract clauses\n\nClauseWise flags indemnity risk in contracts."),
    )
    write(
        corpus / "it" / "gateway.md",
        markdown(
            "gateway", "# Gateway FAQ\n\nThe gateway keeps prompts for 90 days.", doc_type="faq"
        ),
    )
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        corpus_dir=corpus,
        today="2026-11-28",
        generator="extractive",
        serve_threads=2,  # torch threads are process-wide: leave the other tests theirs
        max_request_bytes=20_000,
        upload_max_bytes=UPLOAD_MAX,
        rate_limit_per_minute=0,  # these tests make many requests with one key
    )
    store = build_store(settings)
    build_ingester(settings, store, build_embedder(settings)).sync(corpus)
    keys = KeyStore(settings.keys_path)
    KEYS.update(admin=keys.create("admin", Role.ADMIN), reader=keys.create("reader", Role.READER))
    keys.close()
    with TestClient(create_app(settings)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {KEYS['admin']}"
        yield test_client


def as_(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who]}"}


def upload(
    client: TestClient,
    *files: tuple[str, bytes],
    metadata: dict[str, Any] | None = None,
    file_metadata: dict[str, Any] | None = None,
    replace: bool | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    data: dict[str, str] = {}
    if metadata is not None:
        data["metadata"] = json.dumps(metadata)
    if file_metadata is not None:
        data["file_metadata"] = json.dumps(file_metadata)
    if replace is not None:
        data["replace"] = str(replace).lower()
    parts = [("files", (name, body, "application/octet-stream")) for name, body in files]
    return client.post("/v1/documents", files=parts, data=data, headers=headers)


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` (hidden ones too) with a hash of its content."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def doc_ids(client: TestClient) -> set[str]:
    return {d["doc_id"] for d in client.get("/v1/documents").json()}


def search_ids(client: TestClient, query: str) -> list[str]:
    response = client.post("/v1/search", json={"query": query, "k": 3}, headers=as_("reader"))
    return [h["doc_id"] for h in response.json()["hits"]]


def pdf_bytes(tmp_path: Path, heading: str, text: str) -> bytes:
    return make_pdf(tmp_path / "made.pdf", [[(heading, [text])]]).read_bytes()


SCORECARD = {
    "id": "llm-scorecard",
    "title": "LLM platform scorecard",
    "doc_type": "vendor_evaluation",
    "department": "coe",
    "owner": "AI CoE platform team",
    "last_reviewed": "2026-05-10",
    "tags": ["llm", "vendors"],
}


# -- uploads that succeed -------------------------------------------------------------------


def test_markdown_with_front_matter_is_searchable_at_once(client: TestClient, corpus: Path) -> None:
    body = markdown(
        "heron-playbook",
        "# Heron rollout playbook\n\nRoll Heron out to one plant first, then to the others.",
        department="coe",
    )
    response = upload(client, ("heron.md", body.encode()))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["doc_ids"] == ["heron-playbook"]
    assert [(e["doc_id"], e["path"]) for e in report["added"]] == [
        ("heron-playbook", "coe/heron.md")
    ]
    assert report["failed"] == report["removed"] == []
    assert (corpus / "coe" / "heron.md").read_text(encoding="utf-8") == body
    assert not (corpus / "coe" / "heron.md.meta.yaml").exists()
    assert search_ids(client, "Heron rollout to one plant")[0] == "heron-playbook"


def test_pdf_with_metadata_gets_a_sidecar(client: TestClient, corpus: Path, tmp_path: Path) -> None:
    pdf = pdf_bytes(tmp_path, "Scorecard", "Vendor Falconry scored 4.2 on data residency.")
    response = upload(client, ("scorecard.pdf", pdf), metadata=SCORECARD)
    assert response.status_code == 200, response.text
    assert response.json()["doc_ids"] == ["llm-scorecard"]
    assert (corpus / "coe" / "scorecard.pdf").read_bytes() == pdf
    sidecar = corpus / "coe" / "scorecard.pdf.meta.yaml"
    assert yaml.safe_load(sidecar.read_text(encoding="utf-8")) == SCORECARD
    assert search_ids(client, "Falconry data residency score")[0] == "llm-scorecard"
    detail = client.get("/v1/documents/llm-scorecard").json()
    assert (detail["format"], detail["doc_type"], detail["path"]) == (
        "pdf",
        "vendor_evaluation",
        "coe/scorecard.pdf",
    )
    assert "Falconry" in detail["chunk_list"][0]["text"]
    assert not [p for p in corpus.iterdir() if p.name.startswith(".")]  # staging cleaned up
    source = client.get("/v1/documents/llm-scorecard/source")
    assert source.content == pdf
    assert source.headers["content-type"] == "application/pdf"
    assert source.headers["content-disposition"].startswith("inline;")  # #page=N works


def test_several_formats_in_one_request_with_per_file_metadata(
    client: TestClient, corpus: Path, tmp_path: Path
) -> None:
    docx = make_docx(
        tmp_path / "d.docx", "Onboarding", [("Accounts", ["Request a Kite account first."])]
    )
    html = make_html(tmp_path / "h.html", "Expenses", [("Limits", ["Taxis up to EUR 40."])])
    shared = {"department": "hr", "owner": "People team", "doc_type": "policy"}
    per_file = {"onboarding.docx": {"id": "onboarding"}, "expenses.html": {"doc_type": "faq"}}
    response = upload(
        client,
        ("onboarding.docx", docx.read_bytes()),
        ("expenses.html", html.read_bytes()),
        ("notes.txt", b"Hiring notes: panels have three interviewers.\n"),
        metadata=shared,
        file_metadata=per_file,
    )
    assert response.status_code == 200, response.text
    assert response.json()["doc_ids"] == ["onboarding", "expenses", "notes"]
    assert client.get("/v1/documents/expenses").json()["doc_type"] == "faq"
    assert client.get("/v1/documents/onboarding").json()["format"] == "docx"
    assert (corpus / "hr" / "notes.txt.meta.yaml").exists()
    assert search_ids(client, "Kite account onboarding")[0] == "onboarding"
    # HTML is a download: shown on this origin, its scripts could read the page's API key
    page = client.get("/v1/documents/expenses/source")
    assert page.headers["content-disposition"].startswith("attachment;")
    assert page.headers["x-content-type-options"] == "nosniff"


# -- who may ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/documents", "/v1/sync"])
def test_admin_routes_need_the_admin_role(client: TestClient, path: str) -> None:
    files = {"files": ("x.md", b"# X\n")} if path == "/v1/documents" else None
    fresh = TestClient(client.app)
    assert fresh.post(path, files=files).status_code == 401
    forbidden = fresh.post(path, files=files, headers=as_("reader"))
    assert forbidden.status_code == 403
    assert "admin" in forbidden.json()["detail"]


# -- refused before anything is written -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("tool.exe", "unsupported format '.exe'"),
        ("../../escape.md", "path separator"),
        ("..\\escape.md", "path separator"),
        ("notes..md", "'..'"),
        (".hidden.md", "hidden"),
        ("_draft.md", "hidden"),
        ("x" * 130 + ".md", "longer than"),
    ],
)
def test_unsafe_names_and_types_are_refused(
    client: TestClient, corpus: Path, name: str, needle: str
) -> None:
    before = tree(corpus.parent)
    body = markdown("escape", "# Escape\n\nText.", department="coe")
    response = upload(client, (name, body.encode()))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert needle in detail
    assert ascii(name).strip("'")[:20] in detail  # names the file
    assert tree(corpus.parent) == before  # nothing written, inside the corpus or next to it
    assert "escape" not in doc_ids(client)


def test_control_characters_in_a_name_are_refused(client: TestClient, corpus: Path) -> None:
    before = tree(corpus.parent)
    # by hand: HTTP clients percent-encode control characters in file names
    body = (
        b"--b\r\n"
        b'Content-Disposition: form-data; name="files"; filename="bad\x07name.md"\r\n\r\n'
        b"---\ndepartment: coe\nowner: x\ndoc_type: faq\n---\n# Bad\n\r\n"
        b"--b--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    response = client.post("/v1/documents", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert "'bad\\x07name.md': the name contains control" in response.json()["detail"]
    assert tree(corpus.parent) == before


@pytest.mark.parametrize(
    ("meta", "field", "hint"),
    [
        ({**SCORECARD, "id": "memo-1", "doc_type": "memo"}, "doc_type", "use one of"),
        ({**SCORECARD, "id": "memo-2", "revew_by": "2027-01-01"}, "revew_by", "review_by"),
        ({**SCORECARD, "id": "memo-3", "last_reviewed": "May 2026"}, "last_reviewed", "YYYY"),
        ({k: v for k, v in SCORECARD.items() if k != "department"}, "department", "missing"),
        ({**SCORECARD, "id": "memo-4", "department": "../etc"}, "department", "slug"),
    ],
)
def test_bad_metadata_names_the_field_and_changes_nothing(
    client: TestClient, corpus: Path, tmp_path: Path, meta: dict[str, Any], field: str, hint: str
) -> None:
    before, docs = tree(corpus.parent), doc_ids(client)
    pdf = pdf_bytes(tmp_path, "Memo", "A memo about nothing in particular.")
    response = upload(client, ("memo.pdf", pdf), metadata=meta)
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith("memo.pdf: ")
    assert f"'{field}'" in detail
    assert hint in detail
    assert tree(corpus.parent) == before
    assert doc_ids(client) == docs


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"metadata": "{not json"}, "metadata"),
        ({"metadata": "[1, 2]"}, "metadata"),
        ({"metadata": "{}", "file_metadata": '{"other.md": {}}'}, "file_metadata"),
    ],
)
def test_malformed_metadata_fields_are_422(
    client: TestClient, fields: dict[str, str], parameter: str
) -> None:
    body = markdown("fm", "# FM\n\nText.", department="coe").encode()
    response = client.post("/v1/documents", files={"files": ("fm.md", body)}, data=fields)
    assert response.status_code == 422, response.text
    assert f"parameter '{parameter}'" in response.json()["detail"]


def test_more_files_than_allowed_are_422(client: TestClient, corpus: Path) -> None:
    before = tree(corpus)
    files = [(f"n{i}.md", b"# N\n") for i in range(MAX_FILES + 1)]
    response = upload(client, *files, metadata={"department": "coe"})
    assert response.status_code == 422
    assert f"at most {MAX_FILES} files" in response.json()["detail"]
    assert tree(corpus) == before


def test_front_matter_and_metadata_together_are_refused(client: TestClient) -> None:
    body = markdown("both", "# Both\n\nText.", department="coe").encode()
    response = upload(client, ("both.md", body), metadata={"owner": "Someone"})
    assert response.status_code == 400
    assert "keep one" in response.json()["detail"]


def test_oversize_file_is_413(client: TestClient, corpus: Path) -> None:
    before = tree(corpus)
    big = b"# Big\n\n" + b"word " * (UPLOAD_MAX // 5)
    response = upload(client, ("big.md", big), metadata={**SCORECARD, "id": "big"})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "big.md" in response.json()["detail"]
    assert "KB_UPLOAD_MAX_BYTES" in response.json()["detail"]
    assert tree(corpus) == before


# -- conflicts and replacing ------------------------------------------------------------------


def test_existing_path_or_id_needs_replace(client: TestClient, corpus: Path) -> None:
    before = tree(corpus)
    other_id = markdown("clauses-v2", "# Clauses\n\nLiability caps.", department="legal")
    conflict = upload(client, ("clauses.md", other_id.encode()))
    assert conflict.status_code == 409, conflict.text
    assert "legal/clauses.md already exists (document 'clauses')" in conflict.json()["detail"]
    same_id = markdown("clauses", "# Clauses\n\nLiability caps.", department="legal")
    conflict = upload(client, ("clauses-2026.md", same_id.encode()))
    assert conflict.status_code == 409
    assert "id 'clauses' is already used by legal/clauses.md" in conflict.json()["detail"]
    assert tree(corpus) == before
    assert "clauses-v2" not in doc_ids(client)


def test_replace_moves_a_document_to_its_new_file(client: TestClient, corpus: Path) -> None:
    body = markdown(
        "gateway",
        "# Gateway FAQ\n\nThe gateway keeps prompts for 30 days now.",
        doc_type="faq",
        department="it",
    ).encode()
    assert upload(client, ("gateway-2026.md", body)).status_code == 409
    response = upload(client, ("gateway-2026.md", body), replace=True)
    assert response.status_code == 200, response.text
    assert [e["path"] for e in response.json()["updated"]] == ["it/gateway-2026.md"]
    assert not (corpus / "it" / "gateway.md").exists()
    detail = client.get("/v1/documents/gateway").json()
    assert detail["path"] == "it/gateway-2026.md"
    assert "30 days" in detail["chunk_list"][0]["text"]


# -- failures during ingestion are undone -----------------------------------------------------


def test_corrupt_pdf_is_reported_and_removed(client: TestClient, corpus: Path) -> None:
    before, docs = tree(corpus), doc_ids(client)
    corrupt = b"%PDF-1.4\n1 0 obj <</Type /Catalog>> garbage, no xref\n"
    response = upload(client, ("broken.pdf", corrupt), metadata={**SCORECARD, "id": "broken"})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith("coe/broken.pdf: ")
    assert "Nothing was stored" in detail
    assert tree(corpus) == before
    assert doc_ids(client) == docs
    assert search_ids(client, "ClauseWise indemnity risk")[0] == "clauses"


def test_failed_replacement_restores_the_previous_version(
    client: TestClient, corpus: Path, tmp_path: Path
) -> None:
    pdf = pdf_bytes(tmp_path, "Runbook", "Restart the Osprey queue with the blue lever.")
    meta = {**SCORECARD, "id": "osprey-runbook", "doc_type": "playbook"}
    assert upload(client, ("osprey.pdf", pdf), metadata=meta).status_code == 200
    before = tree(corpus)
    changed = {**meta, "owner": "Someone else"}
    response = upload(
        client, ("osprey.pdf", b"%PDF-1.4 not really"), metadata=changed, replace=True
    )
    assert response.status_code == 400, response.text
    assert "coe/osprey.pdf" in response.json()["detail"]
    assert tree(corpus) == before  # the old file and sidecar are back
    detail = client.get("/v1/documents/osprey-runbook").json()
    assert detail["owner"] == SCORECARD["owner"]
    assert "blue lever" in detail["chunk_list"][0]["text"]


def test_a_failing_file_undoes_the_whole_request(client: TestClient, corpus: Path) -> None:
    before, docs = tree(corpus), doc_ids(client)
    good = markdown("kingfisher", "# Kingfisher\n\nKingfisher sorts invoices.", department="coe")
    response = upload(
        client,
        ("kingfisher.md", good.encode()),
        ("broken.docx", b"PK\x03\x04 not a zip archive"),
        file_metadata={"broken.docx": {**SCORECARD, "id": "broken-docx"}},
    )
    assert response.status_code == 400, response.text
    assert "coe/broken.docx" in response.json()["detail"]
    assert tree(corpus) == before
    assert doc_ids(client) == docs


# -- sync -------------------------------------------------------------------------------------


def test_upload_leaves_unsynced_deletions_to_sync(client: TestClient, corpus: Path) -> None:
    (corpus / "legal" / "clauses.md").unlink()  # deleted by hand
    write(
        corpus / "finance" / "dropped.md",
        markdown("dropped", "# Dropped\n\nDropped into the folder by hand.", doc_type="faq"),
    )
    body = markdown("egret", "# Egret\n\nEgret reconciles bank statements.", department="coe")
    response = upload(client, ("egret.md", body.encode()))
    assert response.status_code == 200, response.text
    assert response.json()["removed"] == []
    assert "clauses" in doc_ids(client)  # an upload does not remove other documents
    assert "dropped" not in doc_ids(client)

    report = client.post("/v1/sync").json()
    assert [(e["doc_id"], e["path"]) for e in report["removed"]] == [
        ("clauses", "legal/clauses.md")
    ]
    assert [e["doc_id"] for e in report["added"]] == ["dropped"]
    assert report["updated"] == report["failed"] == []
    assert "egret" in {e["doc_id"] for e in report["unchanged"]}
    assert "clauses" not in doc_ids(client)
    again = client.post("/v1/sync").json()
    assert again["added"] == again["removed"] == again["updated"] == []


def test_sync_refuses_while_another_ingest_runs(client: TestClient) -> None:
    with ingest_held(client):
        response = client.post("/v1/sync")
        busy_upload = upload(client, ("x.md", markdown("x", "# X", department="coe").encode()))
    assert response.status_code == busy_upload.status_code == 409
    assert "another upload or sync is running" in response.json()["detail"]
    assert client.post("/v1/sync").status_code == 200


def test_sync_names_kb_corpus_dir_when_missing(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services(client), "corpus_dir", tmp_path / "nowhere")
    response = client.post("/v1/sync")
    assert response.status_code == 500
    assert "KB_CORPUS_DIR" in response.json()["detail"]


# -- request size limits ----------------------------------------------------------------------


def test_json_body_over_the_limit_is_413(client: TestClient) -> None:
    big = {"query": "x" * 30_000}
    response = client.post("/v1/search", json=big)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 413
    assert body["title"] == "Content too large"
    assert "KB_MAX_REQUEST_BYTES" in body["detail"]


def test_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"query": "'
        yield b"x" * 30_000
        yield b'"}'

    response = client.post(
        "/v1/search", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["title"] == "Content too large"


async def _read_all(scope: Scope, receive: Receive, send: Send) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


async def _stream_through(chunks: list[bytes], limit: int) -> tuple[int, int]:
    """(status sent, chunks read) for a chunked body through the middleware."""
    queue = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    queue[-1]["more_body"] = False
    read = 0

    async def receive() -> Message:
        nonlocal read
        read += 1
        return queue.pop(0)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    middleware = BodySizeLimit(_read_all, default=Limit(limit, "TEST"), routes={})
    await middleware(scope, receive, send)
    return sent[0]["status"], read


def test_middleware_stops_reading_a_stream_at_the_limit() -> None:
    import anyio

    assert anyio.run(_stream_through, [b"x" * 100] * 3, 1000) == (200, 3)
    assert anyio.run(_stream_through, [b"x" * 600] * 10, 1000) == (413, 2)


# -- the narrowed sync uploads rely on ----------------------------------------------------------


def test_sync_narrowed_to_paths_touches_nothing_else(
    tmp_path: Path, store: ChromaStore, embedder: SentenceTransformerEmbedder
) -> None:
    ingester = Ingester(store, embedder)
    for name in ("a", "b"):
        write(tmp_path / "coe" / f"{name}.md", markdown(name, f"# {name}\n\nVersion one."))
    ingester.sync(tmp_path)
    write(tmp_path / "coe" / "a.md", markdown("a", "# a\n\nVersion two."))
    (tmp_path / "coe" / "b.md").unlink()
    write(tmp_path / "coe" / "c.md", markdown("c", "# c\n\nNew."))
    write(tmp_path / "coe" / "d.md", markdown("a", "# d\n\nClaims a's id."))

    report = ingester.sync(tmp_path, only={"coe/c.md", "coe/d.md"})
    assert [e["doc_id"] for e in report.added] == ["c"]
    assert [f.path for f in report.failed] == ["coe/d.md"]
    assert "already used by" in report.failed[0].reason
    assert report.removed == report.updated == []
    assert {r.doc_id for r in store.documents()} == {"a", "b", "c"}
    assert "Version one" in store.document_chunks("a")[0][1]

    report = ingester.sync(tmp_path, only={"coe/b.md"})
    assert [e["doc_id"] for e in report.removed] == ["b"]
    (tmp_path / "coe" / "d.md").unlink()
    assert [e["doc_id"] for e in ingester.sync(tmp_path).updated] == ["a"]
