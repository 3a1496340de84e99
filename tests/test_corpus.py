"""The shipped knowledge base: every file ingests with the metadata it declares, and the golden
set refers only to documents that exist, with the access and freshness it assumes."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
import yaml

from evals.golden import QuestionType, load_golden
from index.embedding import SentenceTransformerEmbedder
from index.records import DocumentRecord
from index.store import ChromaStore
from ingest.metadata import sidecar_path, split_front_matter
from ingest.sync import Ingester

CORPUS = Path(__file__).parents[1] / "corpus"
TODAY = dt.date(2026, 11, 28)


def _declared(path: Path) -> dict:  # type: ignore[type-arg]
    sidecar = sidecar_path(path)
    if sidecar.exists():
        return yaml.safe_load(sidecar.read_text())  # type: ignore[no-any-return]
    front, _ = split_front_matter(path.read_text())
    return yaml.safe_load(front or "") or {}


@pytest.fixture(scope="module")
def ingested(
    embedder: SentenceTransformerEmbedder, chroma_client: object
) -> dict[str, DocumentRecord]:
    store = ChromaStore(chroma_client, "corpus_chunks", "corpus_docs")
    report = Ingester(store, embedder).sync(CORPUS)
    assert report.failed == [], report.failed
    return {r.doc_id: r for r in store.documents()}


def test_golden_set_is_well_formed() -> None:
    questions = load_golden()
    assert len(questions) >= 120
    assert len({q.id for q in questions}) == len(questions)
    kinds = Counter(q.type for q in questions)
    assert kinds[QuestionType.UNANSWERABLE] >= 25
    for kind in QuestionType:
        assert kinds[kind] > 0, kind
    for q in questions:
        if q.type is QuestionType.UNANSWERABLE:
            assert q.expected_docs == [], q.id
            assert q.key_facts == [], q.id
        if q.answerable:
            assert 1 <= len(q.key_facts) <= 4, q.id


@pytest.mark.slow
def test_every_file_ingests_with_the_metadata_it_declares(
    ingested: dict[str, DocumentRecord],
) -> None:
    files = [p for p in CORPUS.rglob("*") if p.is_file() and not p.name.endswith(".meta.yaml")]
    assert len(ingested) == len(files) >= 60
    for path in files:
        declared = _declared(path)
        record = ingested[declared["id"]]
        assert record.path == path.relative_to(CORPUS).as_posix()
        meta = record.meta.model_dump(mode="json")
        for key, value in declared.items():
            if key in {"access", "tags", "supersedes"}:
                value = sorted(
                    {
                        str(v).lower() if key == "access" else str(v)
                        for v in (value if isinstance(value, list) else [value])
                    }
                )
            elif isinstance(value, dt.date):
                value = value.isoformat()
            assert meta[key] == value, (path.name, key)
        assert record.chunk_count > 0


@pytest.mark.slow
def test_golden_set_matches_the_corpus(ingested: dict[str, DocumentRecord]) -> None:
    for q in load_golden():
        for doc_id in [*q.expected_docs, *q.forbidden_docs]:
            assert doc_id in ingested, (q.id, doc_id)
        groups = set(q.principal_groups)
        for doc_id in q.expected_docs:
            assert ingested[doc_id].meta.readable_by(groups), (q.id, doc_id)
        if q.type is QuestionType.RESTRICTED and not q.answerable:
            assert all(not ingested[d].meta.readable_by(groups) for d in q.forbidden_docs), q.id
        if q.must_warn_stale:
            assert ingested[q.expected_docs[0]].meta.is_stale(TODAY), q.id


@pytest.mark.slow
def test_corpus_shape(ingested: dict[str, DocumentRecord]) -> None:
    metas = [r.meta for r in ingested.values()]
    assert len({m.owner for m in metas}) >= 8
    assert len({m.department for m in metas}) >= 7
    assert len({m.doc_type for m in metas}) == 7
    stale = sum(m.is_stale(TODAY) for m in metas)
    assert 0.15 <= stale / len(metas) <= 0.25
    formats = Counter(r.format for r in ingested.values())
    assert formats["docx"] >= 6
    assert formats["pdf"] >= 6
    assert formats["html"] >= 4
    assert any(m.supersedes for m in metas)
    assert any("all" not in m.access for m in metas)
