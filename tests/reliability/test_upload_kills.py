"""The API killed mid-upload (issue 17, item 2): a real `kb serve` process is sent an upload and
SIGKILLed at a random moment of it (while the body arrives, while the file is staged and moved,
while it is ingested), again and again. After each kill, with no server running:

- the uploaded file is in the corpus folder whole, byte for byte, or not at all;
- the store is consistent (`tests/storetools.assert_consistent`: every registry record "ok" or
  left "writing" for the next sync to redo, one version of each document served, no orphan
  chunks);
- no document is in the store without its file in the folder.

At the end a restarted server's `POST /v1/sync` leaves the store what a fresh ingest of the
final folder gives (the same documents, content hashes and chunk counts).

KB_UPLOAD_KILLS sets the number of kills (default 3; each costs a server start, about 15 s).

An upload killed after its file was moved into place keeps the file (the client saw the
connection fail): the folder and the store stay consistent, and the next sync ingests it. The
upload is all or nothing only when it fails without a kill (api/uploads.py undoes it).
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from api.assembly import build_ingester, build_store
from api.keys import Role
from api.settings import Settings
from index.embedding import SentenceTransformerEmbedder
from tests.conftest import TODAY_STR, markdown
from tests.reliability.server_process import ServerProcess, ingested, make_keys, server_process
from tests.storetools import assert_consistent

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("KB_UPLOAD_KILLS", "3"))
SEED = int(os.environ.get("KB_CRASH_SEED", "17"))


def _document(n: int) -> bytes:
    """A Markdown file long enough that its ingest takes a moment (about 60 chunks)."""
    sections = "\n\n".join(
        f"## Step {s}\n\nUpload {n}, step {s}: record the invoice batch, match it against the "
        f"purchase order, and escalate mismatches above {s}% to the AP lead within {s} days."
        for s in range(1, 120)
    )
    return markdown(f"upload-{n}", f"# Upload {n}\n\n{sections}", department="coe").encode()


def _upload(server: ServerProcess, key: str, n: int, outcome: list[object]) -> None:
    files = [("files", (f"upload-{n}.md", _document(n), "text/markdown"))]
    try:
        with server.client(key, timeout=120) as client:
            outcome.append(client.post("/v1/documents", files=files).status_code)
    except httpx.HTTPError as exc:  # the server was killed under it
        outcome.append(exc)


def _store_documents(data: Path, *, killed: bool = False) -> dict[str, str]:
    settings = Settings(_env_file=None, data_dir=data, today=TODAY_STR)
    store = build_store(settings)
    assert_consistent(store, killed=killed)
    return {r.doc_id: r.content_hash for r in store.documents()}


def _folder_ids(corpus: Path) -> set[str]:
    names = {p.stem for p in corpus.rglob("*.md") if not any(x.startswith(".") for x in p.parts)}
    return {n for n in names if n.startswith("upload-")}


def test_an_api_killed_mid_upload_leaves_folder_and_store_consistent(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    rng = random.Random(SEED)
    data, corpus = ingested(tmp_path, embedder)
    keys = make_keys(data, {"admin": (Role.ADMIN, ())})
    settings = {
        "data_dir": data,
        "corpus_dir": corpus,
        "auth": "keys",
        "rate_limit_per_minute": 0,
        "generator": "extractive",
    }

    with server_process(tmp_path, **settings) as server:  # one upload to its end: its length
        outcome: list[object] = []
        started = time.monotonic()
        _upload(server, keys["admin"], 0, outcome)
        full = time.monotonic() - started
    assert outcome == [200], outcome

    landed = interrupted = 0
    for n in range(1, KILLS + 1):
        with server_process(tmp_path, **settings) as server:
            outcome = []
            sender = threading.Thread(target=_upload, args=(server, keys["admin"], n, outcome))
            sender.start()
            time.sleep(rng.uniform(0.0, full * 1.1))
            server.proc.kill()
            server.proc.wait(timeout=30)
            sender.join(timeout=60)
        interrupted += isinstance(outcome[0], Exception)
        target = corpus / "coe" / f"upload-{n}.md"
        if target.exists():
            assert target.read_bytes() == _document(n), "a partial file in the corpus folder"
            landed += 1
        stored = _store_documents(data, killed=True)
        missing = {d for d in stored if d.startswith("upload-")} - _folder_ids(corpus)
        assert not missing, f"documents in the store without their file: {missing}"

    assert interrupted >= 1, "no kill fell inside an upload: the test proved nothing"
    with server_process(tmp_path, **settings) as server, server.client(keys["admin"]) as client:
        assert client.post("/v1/sync").status_code == 200
    after_sync = _store_documents(data)

    fresh_settings = Settings(_env_file=None, data_dir=tmp_path / "fresh", today=TODAY_STR)
    build_ingester(fresh_settings, build_store(fresh_settings), embedder).sync(corpus)
    assert after_sync == _store_documents(tmp_path / "fresh")
    print(
        f"\n{KILLS} kills: {interrupted} in a request, {landed} files landed, upload {full:.0f} s"
    )
