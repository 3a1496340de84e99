"""Each chunk is embedded and keyword-indexed with a context line naming its file, department
and type; the stored (cited) chunk text stays without it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.embedding import SentenceTransformerEmbedder
from index.keyword import KeywordIndex, Tokenizer, chunk_context
from index.store import ChromaStore
from ingest.chunking import ChunkingOptions, chunk_blocks, embedding_text
from ingest.parsing import Block
from ingest.sync import Ingester
from tests.conftest import markdown, write

BODY = "# Travel\n\nBook trains two weeks ahead and keep every receipt for the claim.\n"


class RecordingEmbedder:
    """The real embedder, keeping every text it was asked to embed."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner = inner
        self.texts: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += list(texts)
        return self.inner.embed(texts)


def words(texts: Sequence[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def test_the_context_line_names_the_file_department_and_type() -> None:
    line = chunk_context("finance/Northbridge_2026-q1.report.pdf", "finance", "reference")
    assert line == "Northbridge 2026 q1 report | finance | reference"
    assert chunk_context("notes", "", "") == "notes"


def test_context_is_embedded_but_not_stored(
    tmp_path: Path, store: ChromaStore, embedder: SentenceTransformerEmbedder
) -> None:
    write(tmp_path / "zanzibar-handbook.md", markdown("travel", BODY, department="hr"))
    recording = RecordingEmbedder(embedder)
    options = ChunkingOptions(context_line=True)
    report = Ingester(store, recording, chunking=options).sync(tmp_path)
    assert len(report.added) == 1
    line = "zanzibar handbook | hr | playbook"
    assert recording.texts
    assert all(text.startswith(f"{line}\n") for text in recording.texts)
    _, texts, metadatas = store.all_chunks()
    assert texts
    assert not any("zanzibar" in text for text in texts)
    assert not any("zanzibar" in str(md.get("title", "")) for md in metadatas)


def test_context_is_off_by_default(
    tmp_path: Path, store: ChromaStore, embedder: SentenceTransformerEmbedder
) -> None:
    write(tmp_path / "zanzibar-handbook.md", markdown("travel", BODY, department="hr"))
    recording = RecordingEmbedder(embedder)
    Ingester(store, recording).sync(tmp_path)
    assert recording.texts
    assert not any("zanzibar" in text for text in recording.texts)


def test_keyword_search_sees_the_context_line_only_when_on(
    tmp_path: Path, store: ChromaStore, embedder: SentenceTransformerEmbedder
) -> None:
    write(tmp_path / "zanzibar-handbook.md", markdown("travel", BODY, department="hr"))
    Ingester(store, embedder).sync(tmp_path)
    with_context = KeywordIndex(store, None, Tokenizer(), context_line=True)
    found = with_context.search("zanzibar", 5, None)
    assert [md["doc_id"] for _, _, md in found] == ["travel"]
    without = KeywordIndex(store, None, Tokenizer(), context_line=False)
    assert without.search("zanzibar", 5, None) == []
    assert KeywordIndex(store, None, Tokenizer()).search("zanzibar", 5, None) == []  # default


def test_a_saved_keyword_index_is_rebuilt_when_the_context_setting_changes(
    tmp_path: Path, store: ChromaStore, embedder: SentenceTransformerEmbedder
) -> None:
    write(tmp_path / "docs" / "zanzibar-handbook.md", markdown("travel", BODY, department="hr"))
    Ingester(store, embedder).sync(tmp_path / "docs")
    folder = tmp_path / "bm25"
    with_context = KeywordIndex(store, folder, Tokenizer(), context_line=True)
    assert with_context.search("zanzibar", 5, None)
    without = KeywordIndex(store, folder, Tokenizer(), context_line=False)
    assert without.search("zanzibar", 5, None) == []


def test_the_chunk_budget_counts_the_context_line() -> None:
    blocks = [Block(" ".join(f"w{i}." for i in range(400)), "text")]
    context = "a long context line " * 10
    opts = ChunkingOptions(max_tokens=80, overlap_tokens=0, min_tokens=10)
    chunks = chunk_blocks(blocks, title="T", count_tokens=words, options=opts, context=context)
    assert len(chunks) > 1
    counts = words([embedding_text("T", c.section, c.text, context) for c in chunks])
    assert max(counts) <= opts.max_tokens
