"""Ingest processes for tests/reliability/test_crashes.py to kill: `kb ingest` as the CLI
assembles it (Settings from the environment), forked from one process that loaded the model.

    python -m tests.reliability.ingest_runner ROOT

Loading the embedding model takes seconds, a sync of a small tree well under one, so a process
per run would spend nearly every kill in the loading. This process loads the model (on one
thread: no thread pool, so forking is safe) and the parsers once, says `ready`, then reads
commands on stdin:

- `go DATA_DIR [PORT]`: forks a child and prints `pid N`. The child sets KB_DATA_DIR (and
  KB_CHROMA_HOST / KB_CHROMA_PORT for a `chroma run` server on PORT), builds the
  store and ingester from Settings, prints `found` and a JSON object of the registry records
  that are not "ok" (what a killed run left half-written), syncs ROOT, and prints `result` and
  one JSON object: the report's summary, the seconds from opening the store to the end of the
  sync, and a dump of the store (registry without timestamps, chunk ids with metadata and text
  digests, chunk texts, and `kb store check`'s findings).
- `reap N`: waits for child N (killed or done) and prints `exit N STATUS`. A child is reaped
  only when the test says so, so that its pid cannot be reused before the test killed it.

Chroma is never opened in this process, only in each child.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from index.environment import use_offline_environment

use_offline_environment()

from api.assembly import build_embedder, build_ingester, build_store  # noqa: E402
from api.settings import Settings  # noqa: E402
from index.embedding import Embedder  # noqa: E402
from index.integrity import check  # noqa: E402
from index.store import ChromaStore  # noqa: E402


def dump(store: ChromaStore) -> dict[str, Any]:
    """The store as the test compares it: nothing that differs between two clean ingests of
    one tree (timestamps) is in it."""
    registry = {}
    for record in store.documents():
        md = record.to_chroma()
        md.pop("ingested_at")
        registry[record.doc_id] = md
    ids, texts, metadatas = store.all_chunks()
    chunks = [
        [cid, hashlib.sha256(text.encode()).hexdigest()[:16], md]
        for cid, text, md in zip(ids, texts, metadatas, strict=True)
    ]
    report = check(store)
    return {
        "registry": registry,
        "chunks": sorted(chunks, key=lambda row: row[0]),
        "texts": dict(zip(ids, texts, strict=True)),
        "check": {
            "ok": report.ok,
            "unreachable": report.unreachable,
            "orphans": report.orphans,
            "missing": report.missing,
            "writing": report.writing,
            "leftovers": report.leftovers,
        },
    }


def run(root: Path, data: str, port: str, embedder: Embedder) -> None:
    """The child: one `kb ingest` of `root` into the store under `data`, or, with a port, into
    the `chroma run` server listening there."""
    os.environ["KB_DATA_DIR"] = data
    if port:
        os.environ.update(KB_CHROMA_HOST="127.0.0.1", KB_CHROMA_PORT=port)
    else:
        os.environ.pop("KB_CHROMA_HOST", None)
    settings = Settings()
    started = time.perf_counter()
    store = build_store(settings)
    found = {r.doc_id: r.state for r in store.documents() if r.state != "ok"}
    print("found", json.dumps(found, sort_keys=True), flush=True)
    put_document = store.put_document

    def announced(record: Any, *args: Any) -> None:
        put_document(record, *args)
        print("wrote", record.doc_id, record.state, flush=True)  # a kill can aim after it

    setattr(store, "put_document", announced)  # noqa: B010  (a method replaced on one object)
    report = build_ingester(settings, store, embedder).sync(root)
    seconds = time.perf_counter() - started
    out = {"summary": report.summary(), "seconds": seconds, "store": dump(store)}
    print("result", json.dumps(out, sort_keys=True, default=str), flush=True)


def main(root: Path) -> None:
    settings = Settings()
    embedder = build_embedder(settings, threads=1)
    embedder.embed(["warm up"])
    import unstructured.partition.md  # noqa: F401  (its import takes 1.5 s: not in the window)

    print("ready", flush=True)
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "go":
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    data, _, port = arg.partition(" ")
                    run(root, data, port, embedder)
                except BaseException as exc:  # reported, then the child ends without cleanup
                    print("error", repr(exc).replace("\n", " "), flush=True)
                    code = 1
                os._exit(code)
            print("pid", pid, flush=True)
        elif command == "reap":
            _, status = os.waitpid(int(arg), 0)
            print("exit", arg, status, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
