"""Settings refuse nonsense, and the README's table says what the code does."""

from __future__ import annotations

import ast
import inspect
import os
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from api.assembly import (
    assistant_options,
    chunking_options,
    generator_config,
    metadata_options,
    retrieval_options,
)
from api.settings import Settings, settings_table
from assistant.generators import GeneratorConfig
from assistant.service import AssistantOptions
from index.embedding import CachedEmbedder, SentenceTransformerEmbedder
from index.hybrid import RetrievalOptions
from index.store import ChromaServer, ChromaStore
from ingest.chunking import ChunkingOptions
from ingest.metadata import MetadataOptions


def test_env_prefix_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_DATA_DIR", "/srv/kb")
    monkeypatch.setenv("KB_TODAY", "2026-01-31")
    settings = Settings()
    assert settings.chroma_path == Path("/srv/kb/chroma")
    assert str(settings.today_date()) == "2026-01-31"


@pytest.mark.parametrize(
    "bad",
    [
        {"chunk_max_tokens": 10},
        {"chunk_overlap_tokens": 200},
        {"chunks_collection": "ab"},
        {"chunks_collection": "same", "documents_collection": "same"},
        {"log_level": "LOUD"},
        {"today": "yesterday"},
        {"auth": "dev", "host": "0.0.0.0"},
        {"auth": "none"},
    ],
)
def test_nonsense_is_refused(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_readme_settings_table_is_current() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert settings_table() in readme, "README settings table is stale: paste settings_table()"


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings' own defaults: no `KB_*` variable, no `.env` file."""
    for name in list(os.environ):
        if name.startswith("KB_"):
            monkeypatch.delenv(name)
    return Settings(_env_file=None)


def test_each_default_lives_in_one_place(defaults: Settings) -> None:
    """What default settings feed each component is the component's own default, so the
    service, the CLI and a component built without arguments agree (a setting whose default
    is written again and drifts fails here)."""
    assert chunking_options(defaults) == ChunkingOptions()
    assert retrieval_options(defaults) == RetrievalOptions()
    assert assistant_options(defaults) == AssistantOptions()
    assert metadata_options(defaults) == MetadataOptions()
    # the model file is where `make install` puts it; a bare GeneratorConfig names none
    assert replace(generator_config(defaults), model_path=None) == GeneratorConfig()
    store = inspect.signature(ChromaStore.open).parameters
    server = ChromaServer("chroma.internal")
    assert (defaults.chroma_port, defaults.chroma_ssl) == (server.port, server.ssl)
    assert (defaults.chroma_auth_token, defaults.chroma_auth_header) == (
        server.auth_token,
        server.auth_header,
    )
    assert (defaults.chroma_tenant, defaults.chroma_database) == (server.tenant, server.database)
    assert defaults.chunks_collection == store["chunks_name"].default
    assert defaults.documents_collection == store["documents_name"].default
    embedder = inspect.signature(SentenceTransformerEmbedder).parameters
    assert defaults.embed_batch_size == embedder["batch_size"].default
    cache = inspect.signature(CachedEmbedder).parameters
    assert defaults.embed_cache_entries == cache["max_entries"].default


ASSEMBLY = {"api/settings.py", "api/assembly.py", "api/app.py", "api/cli.py"}


def test_settings_are_read_only_where_the_product_is_assembled() -> None:
    """Routes, middleware and components take plain values: outside the assembly, no module
    imports the settings or reaches for a `.settings` attribute (api/assembly.py says so)."""
    root = Path(__file__).parents[1]
    readers: set[str] = set()
    for package in ("api", "assistant", "index", "ingest"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                imported = (isinstance(node, ast.ImportFrom) and node.module == "api.settings") or (
                    isinstance(node, ast.Import)
                    and any(a.name == "api.settings" for a in node.names)
                )
                reached = isinstance(node, ast.Attribute) and node.attr == "settings"
                if imported or reached:
                    readers.add(path.relative_to(root).as_posix())
    assert readers - ASSEMBLY == set()
    assert {"api/app.py", "api/cli.py"} <= readers  # the check sees what it looks for
