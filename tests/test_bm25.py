"""The paged BM25 matrix and the compact chunk table against what they replace: bm25s's own
scores, and a plain list of metadata dicts filtered with `matches`."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
import pytest

from index.bm25 import BM25Builder, BM25Matrix
from index.chunk_table import ChunkTable, ChunkTableBuilder
from index.filters import ADMIN, Principal, SearchFilters, build_where, matches

WORDS = [f"w{i}" for i in range(300)]
TODAY = dt.date(2026, 11, 28)  # review_date_day 739940 + doc straddles it


def _corpus(rng: random.Random, n: int) -> list[list[str]]:
    # Zipf-like: a few words in most chunks, most words rare; some chunks empty or one word.
    weights = [1 / (i + 1) for i in range(len(WORDS))]
    return [rng.choices(WORDS, weights, k=rng.choice([0, 1, 3, 20, 60, 150])) for _ in range(n)]


@pytest.mark.parametrize("page", [1, 7, 1000])
def test_scores_equal_bm25s_lucene_whatever_the_page_size(page: int, tmp_path: Path) -> None:
    rng = random.Random(page)
    corpus = _corpus(rng, 400)
    builder = BM25Builder()
    for start in range(0, len(corpus), page):
        builder.add(corpus[start : start + page])
    ours = builder.build()
    ours.save(tmp_path / "m")
    loaded = BM25Matrix.load(tmp_path / "m")

    reference = bm25s.BM25()  # method "lucene", k1 1.5, b 0.75
    reference.index(corpus, show_progress=False)
    queries = [rng.sample(WORDS[:40], 2) + rng.sample(WORDS, 3) for _ in range(30)]
    queries += [["w0", "w0", "w5"], ["w299"], ["not-a-word"], ["not-a-word", "w3"]]
    for query in queries:
        known = [t for t in query if t in reference.vocab_dict]
        expected = reference.get_scores(known) if known else np.zeros(len(corpus))
        np.testing.assert_allclose(ours.scores(query), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(loaded.scores(query), ours.scores(query))


def test_an_empty_corpus_scores_nothing() -> None:
    matrix = BM25Builder().build()
    assert matrix.n_rows == 0
    assert len(matrix.scores(["anything"])) == 0


def _metadata(rng: random.Random, doc: int, version: int, index: int) -> dict[str, Any]:
    md: dict[str, Any] = {
        "doc_id": f"doc-{doc}",
        "content_hash": f"h{doc}-{version}",
        "department": ["finance", "hr", "coe"][doc % 3],
        "doc_type": "playbook",
        "status": ["approved", "superseded"][doc % 5 == 0],
        "access": ["everyone"] if doc % 4 else ["finance"],
        "review_date_day": 739940 + doc,
        "title": f"Doc {doc}",
        "chunk_index": index,
    }
    if rng.random() < 0.7:
        md["section"] = rng.choice(["Steps", "Before you start", "Steps > Approval"])
    if rng.random() < 0.5:
        md["page"] = rng.randint(1, 40)
        md["page_end"] = md["page"] + rng.randint(0, 1)
    return md


def _metadatas(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = [
        _metadata(rng, doc, version, index)
        for doc in range(25)
        for version in range(1 + (doc % 7 == 0))  # two versions side by side (mid-write)
        for index in range(rng.randint(1, 12))
    ]
    rng.shuffle(rows[: len(rows) // 3])
    # Unexpected shapes stay with the chunk: a float page, an int section, a huge index.
    rows[0]["page"] = 3.5
    rows[1]["section"] = 12
    rows[2]["chunk_index"] = 2**40
    # One document version whose chunks disagree on a document key (a metadata edit caught
    # halfway): each chunk must keep its own value.
    rows[3]["department"], rows[4]["department"] = "legal", "it"
    rows[4]["doc_id"], rows[4]["content_hash"] = rows[3]["doc_id"], rows[3]["content_hash"]
    return rows


def test_chunk_table_gives_back_every_chunks_metadata(tmp_path: Path) -> None:
    rows = _metadatas(1)
    builder = ChunkTableBuilder()
    for start in range(0, len(rows), 10):
        builder.add(rows[start : start + 10])
    table = builder.build()
    assert len(table.documents) < len(rows) / 2  # compact: one part per document version
    table.save(tmp_path)
    loaded = ChunkTable.load(tmp_path)
    for i, md in enumerate(rows):
        assert table.metadata(i) == md
        assert loaded.metadata(i) == md


@pytest.mark.parametrize(
    "where",
    [
        build_where(SearchFilters(), Principal.of("finance"), TODAY),
        build_where(SearchFilters(departments=("hr", "legal")), ADMIN, TODAY),
        build_where(SearchFilters(stale=True, include_superseded=True), ADMIN, TODAY),
        {"$and": [{"department": "finance"}, {"section": "Steps"}]},  # a chunk key
        {"$or": [{"page": {"$gte": 20}}, {"chunk_index": 0}]},
    ],
)
def test_chunk_table_masks_agree_with_matches(where: dict[str, Any]) -> None:
    rows = _metadatas(2)
    builder = ChunkTableBuilder()
    builder.add(rows)
    mask = builder.build().mask(where)
    assert mask.tolist() == [matches(where, md) for md in rows]
    assert 0 < mask.sum() < len(rows)  # the case is not trivial


class _Pages:
    """A store as the keyword index reads it: a generation and pages of chunks."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.reads = 0
        self.gen = "g1"

    def generation(self) -> str:
        return self.gen

    def chunk_pages(self) -> Any:
        self.reads += 1
        for start in range(0, len(self.rows), 7):
            page = self.rows[start : start + 7]
            yield (
                [f"{md['doc_id']}:{md['content_hash']}:{md['chunk_index']}" for md in page],
                [f"text of {md['doc_id']} about {md['department']}" for md in page],
                page,
            )


def _index(store: _Pages, folder: Path | None) -> Any:
    from index.keyword import KeywordIndex, Tokenizer

    return KeywordIndex(store, folder, Tokenizer())  # type: ignore[arg-type]


def test_a_saved_index_is_loaded_by_the_next_process_not_rebuilt(tmp_path: Path) -> None:
    rows = _metadatas(3)
    store = _Pages(rows)
    first = _index(store, tmp_path / "bm25")
    hits = first.search("finance", 10, None)
    assert store.reads == 1
    assert hits
    second = _index(store, tmp_path / "bm25")
    assert second.search("finance", 10, None) == hits
    assert store.reads == 1  # loaded
    assert [p.name for p in tmp_path.iterdir()] == ["bm25"]  # no save folder left behind

    store.gen = "g2"  # another process wrote: the saved copy is of an older generation
    assert second.search("finance", 10, None) == hits
    assert store.reads == 2


def test_a_load_during_another_processs_save_uses_nothing_it_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _Pages(_metadatas(4))
    _index(store, tmp_path / "bm25").current()
    other = _index(store, tmp_path / "bm25")
    real_load = ChunkTable.load

    def load_while_another_saves(folder: Path) -> ChunkTable:
        table = real_load(folder)
        _index(store, tmp_path / "bm25")._build("g1")  # builds and swaps a save in
        return table

    monkeypatch.setattr(ChunkTable, "load", staticmethod(load_while_another_saves))
    assert other._load("g1") is None


def test_an_index_saved_in_the_earlier_format_is_rebuilt(tmp_path: Path) -> None:
    folder = tmp_path / "bm25"
    folder.mkdir()
    (folder / "generation").write_text("g1", encoding="utf-8")  # the bm25s format's stamp
    (folder / "chunks.json").write_text('{"ids": [], "metadatas": []}', encoding="utf-8")
    store = _Pages(_metadatas(5))
    assert _index(store, folder).search("finance", 5, None)
    assert store.reads == 1


def test_a_large_index_keeps_serving_while_the_next_generation_builds(tmp_path: Path) -> None:
    """From `background_above` chunks, a change of generation starts a build in the background
    and queries meanwhile get the previous index at once; the next query after the build gets
    the new one."""
    import threading

    from index.keyword import KeywordIndex, Tokenizer

    release = threading.Event()
    rows = _metadatas(6)

    class Slow(_Pages):
        def chunk_pages(self) -> Any:
            if self.gen != "g1":
                assert release.wait(30)
            yield from super().chunk_pages()

    store = Slow(rows)
    index = KeywordIndex(store, tmp_path / "bm25", Tokenizer(), background_above=len(rows))  # type: ignore[arg-type]
    before = index.search("legal", 50, None)
    assert {md["department"] for _, _, md in before} == {"legal"}

    store.rows = [dict(md, department="legal") for md in rows]  # every chunk now legal
    store.gen = "g2"
    assert index.search("legal", 50, None) == before  # served at once, by the previous index
    release.set()
    index.wait_for_build(30)
    after = index.search("legal", 50, None)
    assert len(after) == min(50, len(rows))
    assert index.current().generation == "g2"


def test_a_small_index_is_rebuilt_before_the_query_is_answered(tmp_path: Path) -> None:
    store = _Pages(_metadatas(7))
    index = _index(store, tmp_path / "bm25")  # the default threshold: far above these rows
    index.current()
    store.gen = "g2"
    assert index.current().generation == "g2"
