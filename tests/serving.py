"""The app in a real uvicorn server on a loopback port, for tests that need real HTTP (the
OpenAI client, a browser); and the services behind an in-process TestClient."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import Services
from api.settings import Settings
from index.filelock import FileLock
from tests.conftest import free_port


@dataclass(frozen=True)
class Live:
    app: FastAPI
    origin: str  # http://127.0.0.1:<port>
    settings: Settings


@contextmanager
def serving(settings: Settings, start_timeout_s: float = 120) -> Iterator[Live]:
    """Serve `create_app(settings)` in a background thread until the block ends; fails the
    test if the lifespan (model, index) has not finished within `start_timeout_s`."""
    port = free_port()
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the API server did not start")
        time.sleep(0.05)
    try:
        yield Live(app, f"http://127.0.0.1:{port}", settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def services(client: TestClient) -> Services:
    """The services the app behind `client` was built with."""
    found: Services = client.app.state.services  # type: ignore[attr-defined]
    return found


@contextmanager
def ingest_held(client: TestClient) -> Iterator[None]:
    """The service's ingest lock held as another process holds it: through its own open file."""
    other = FileLock(services(client).ingest_lock.path)
    assert other.try_acquire(), "the ingest lock was already held"
    try:
        yield
    finally:
        other.release()
