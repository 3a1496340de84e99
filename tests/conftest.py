"""Shared fixtures. Tests run offline: any connection to a non-loopback address fails at once,
so a hidden model or telemetry download shows up as an error, not as a slow pass."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from index.environment import use_offline_environment

use_offline_environment(force=True)
# With the local model installed, the extractive generator's answers are judged by it
# (KB_ANSWER_JUDGE=auto). Tests of the answer flow use the extractive generator for its speed
# and its exact sentences, so they run without the judge unless they are about it
# (tests/test_judge_e2e.py turns it on).
os.environ.setdefault("KB_ANSWER_JUDGE", "off")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkBlockedError(RuntimeError):
    pass


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # AF_UNIX paths
    host = str(address[0])
    if host in {"localhost", ""}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost


def _guard(address: Any) -> None:
    if not _is_loopback(address):
        raise NetworkBlockedError(f"tests may not connect to {address!r}: only loopback")


def _connect(self: socket.socket, address: Any) -> None:
    _guard(address)
    _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    _guard(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _connect  # type: ignore[method-assign]
socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]

from index.embedding import SentenceTransformerEmbedder  # noqa: E402
from index.store import ChromaStore  # noqa: E402

TODAY_STR = "2026-11-28"


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The real MiniLM model, loaded once per test session."""
    model = SentenceTransformerEmbedder()
    model.embed(["warm up"])
    return model


@pytest.fixture(scope="session")
def chroma_client() -> Any:
    """One in-memory Chroma for the session; each test gets its own collections."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.EphemeralClient(settings=ChromaSettings(anonymized_telemetry=False))


def new_store(client: Any) -> ChromaStore:
    suffix = uuid.uuid4().hex[:10]
    return ChromaStore(client, f"chunks_{suffix}", f"docs_{suffix}")


def drop_store(client: Any, store: ChromaStore) -> None:
    """Collections are left in place, not deleted: local Chroma 1.5 does not always cascade a
    collection's deletion (chroma-core/chroma#4885), and records of a deleted collection were
    seen to match a `get(where=...)` on a new one in the same process. Names are unique and
    the client is in memory, so keeping them costs little."""


@pytest.fixture
def store(chroma_client: Any) -> Iterator[ChromaStore]:
    s = new_store(chroma_client)
    yield s
    drop_store(chroma_client, s)


def free_port() -> int:
    """A loopback port nothing listens on right now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def markdown(doc_id: str, body: str, **fields: Any) -> str:
    meta = {"id": doc_id, "doc_type": "playbook", "owner": "Test Owner", **fields}
    lines = ["---", *(f"{k}: {v}" for k, v in meta.items()), "---", body]
    return "\n".join(lines) + "\n"
