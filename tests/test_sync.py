"""Sync with the real model and a real Chroma: formats, metadata, incremental updates, bad
input, crash recovery."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from index.embedding import CachedEmbedder, SentenceTransformerEmbedder
from index.store import ChromaStore
from ingest.sync import Ingester
from tests.conftest import markdown, write
from tests.samples import make_docx, make_html, make_pdf
from tests.storetools import (
    CountingStore,
    Interrupted,
    InterruptingStore,
    assert_consistent,
    snapshot,
)

SECTIONS = [
    ("Scope", ["The accounts-payable team matches supplier invoices to purchase orders."]),
    ("Threshold", ["Auto-approve a match when DocuSift confidence is at least 0.92."]),
]


@pytest.fixture
def ingester(store: ChromaStore, embedder: SentenceTransformerEmbedder) -> Ingester:
    return Ingester(store, CachedEmbedder(embedder))


def _tree(root: Path) -> Path:
    write(
        root / "finance" / "ap-guide.md",
        markdown(
            "ap-guide",
            "# AP guide\n\n## Matching\n\nMatch invoices with DocuSift.\n",
            title="AP guide",
            last_reviewed="2025-01-15",
            access="[finance, coe]",
            tags="[ocr]",
            vendor="DocuSift",
        ),
    )
    write(root / "hr" / "faq" / "leave.txt", "Leave requests go through PeopleCore.\n")
    write(root / "hr" / "faq" / "leave.txt.meta.yaml", "owner: Gareth Olsen\n")
    make_pdf(root / "coe" / "scorecard.pdf", [[SECTIONS[0]], [SECTIONS[1]]])
    write(
        root / "coe" / "scorecard.pdf.meta.yaml",
        "doc_type: vendor_evaluation\nowner: Amara Okafor\nreview_by: 2027-01-01\n",
    )
    make_docx(root / "legal" / "contracts.docx", "Contract review", SECTIONS)
    write(root / "legal" / "contracts.docx.meta.yaml", "doc_type: lessons_learned\nowner: Sam\n")
    make_html(root / "it" / "gateway.html", "Gateway FAQ", SECTIONS)
    write(root / "it" / "gateway.html.meta.yaml", "doc_type: faq\nowner: Nadia\nstatus: draft\n")
    return root


def test_every_format_lands_with_its_metadata(
    tmp_path: Path, ingester: Ingester, store: ChromaStore
) -> None:
    report = ingester.sync(_tree(tmp_path))
    assert report.failed == []
    assert sorted(e["doc_id"] for e in report.added) == [
        "ap-guide",
        "contracts",
        "gateway",
        "leave",
        "scorecard",
    ]
    docs = {r.doc_id: r for r in store.documents()}
    ap = docs["ap-guide"]
    assert (ap.meta.department, ap.meta.access, ap.meta.vendor) == (
        "finance",
        ["coe", "finance"],
        "DocuSift",
    )
    assert ap.meta.review_date == dt.date(2025, 7, 14)  # playbook: 180 days
    assert docs["leave"].meta.doc_type == "faq"
    assert docs["leave"].meta.department == "hr"
    assert docs["gateway"].meta.status == "draft"
    assert ap.chunk_count == len(store.document_chunks("ap-guide"))

    pdf_chunks = store.document_chunks("scorecard")
    pages = {md.get("page") for _, _, md in pdf_chunks} | {
        md.get("page_end") for _, _, md in pdf_chunks
    }
    assert pages >= {1, 2}
    _, text, md = store.document_chunks("ap-guide")[0]
    assert "DocuSift" in text
    assert md["section"] == "Matching"
    assert md["access"] == ["coe", "finance"]
    assert md["review_date"] == "2025-07-14"
    assert_consistent(store)


def test_unchanged_tree_embeds_and_writes_nothing(
    tmp_path: Path, ingester: Ingester, store: ChromaStore, embedder: SentenceTransformerEmbedder
) -> None:
    root = _tree(tmp_path)
    ingester.sync(root)
    before, generation = snapshot(store), store.generation()
    counting = CountingStore(store)
    report = Ingester(counting, embedder).sync(root)
    assert (report.added, report.updated, report.removed, report.failed) == ([], [], [], [])
    assert len(report.unchanged) == 5
    assert counting.writes == 0
    assert store.generation() == generation
    assert snapshot(store) == before


def test_an_edit_replaces_exactly_that_documents_chunks(
    tmp_path: Path, ingester: Ingester, store: ChromaStore
) -> None:
    root = _tree(tmp_path)
    ingester.sync(root)
    _, before = snapshot(store)
    generation = store.generation()
    doc = root / "finance" / "ap-guide.md"
    doc.write_text(doc.read_text().replace("Match invoices", "Match every invoice line"))
    report = ingester.sync(root)
    assert [e["doc_id"] for e in report.updated] == ["ap-guide"]
    _, after = snapshot(store)
    others = {cid for cid, (_, md) in before.items() if md["doc_id"] != "ap-guide"}
    assert others == {cid for cid, (_, md) in after.items() if md["doc_id"] != "ap-guide"}
    assert any("every invoice line" in text for text, md in after.values())
    assert not any("Match invoices with" in text for text, _ in after.values())
    assert store.generation() != generation
    assert_consistent(store)


def test_a_removed_file_takes_its_chunks_and_record_with_it(
    tmp_path: Path, ingester: Ingester, store: ChromaStore
) -> None:
    root = _tree(tmp_path)
    ingester.sync(root)
    (root / "coe" / "scorecard.pdf").unlink()
    report = ingester.sync(root)
    assert report.removed == [{"doc_id": "scorecard", "path": "coe/scorecard.pdf"}]
    assert store.document("scorecard") is None
    assert store.document_chunks("scorecard") == []
    assert len(report.failed) == 1
    assert "sidecar without its document" in report.failed[0].reason
    assert_consistent(store)


def test_bad_files_are_reported_and_the_batch_goes_on(
    tmp_path: Path, ingester: Ingester, store: ChromaStore
) -> None:
    root = _tree(tmp_path)
    (root / "coe" / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    write(root / "coe" / "broken.pdf.meta.yaml", "doc_type: faq\nowner: A\n")
    write(root / "finance" / "dated.md", markdown("dated", "Text.", last_reviewed="2026-02-30"))
    (root / "hr" / "latin.txt").write_bytes("Cong\xe9s pay\xe9s".encode("latin-1"))
    write(root / "hr" / "budget.xlsx", "not really a spreadsheet")
    write(root / "legal" / "empty.md", markdown("empty", ""))
    report = ingester.sync(root)
    failed = {f.path: f.reason for f in report.failed}
    assert set(failed) == {
        "coe/broken.pdf",
        "finance/dated.md",
        "hr/latin.txt",
        "hr/budget.xlsx",
        "legal/empty.md",
    }
    assert "last_reviewed" in failed["finance/dated.md"]
    assert "UTF-8" in failed["hr/latin.txt"]
    assert "unsupported format '.xlsx'" in failed["hr/budget.xlsx"]
    assert "no text" in failed["legal/empty.md"]
    assert len(report.added) == 5
    assert_consistent(store)


def test_a_file_that_turns_bad_keeps_its_stored_version(
    tmp_path: Path, ingester: Ingester, store: ChromaStore
) -> None:
    root = _tree(tmp_path)
    ingester.sync(root)
    before = snapshot(store)
    write(root / "hr" / "faq" / "leave.txt.meta.yaml", "owner: Gareth\nstatus: gone\n")
    report = ingester.sync(root)
    assert [f.path for f in report.failed] == ["hr/faq/leave.txt"]
    reason = report.failed[0].reason
    assert reason.startswith("leave.txt.meta.yaml: metadata field 'status'")
    assert report.removed == []
    assert snapshot(store) == before


def test_two_files_cannot_share_an_id(
    tmp_path: Path, ingester: Ingester, store: ChromaStore
) -> None:
    write(tmp_path / "coe" / "a.md", markdown("same", "First."))
    write(tmp_path / "coe" / "b.md", markdown("same", "Second."))
    report = ingester.sync(tmp_path)
    assert [e["path"] for e in report.added] == ["coe/a.md"]
    assert report.failed[0].path == "coe/b.md"
    assert "already used by coe/a.md" in report.failed[0].reason


def test_a_changed_id_replaces_the_old_document(
    tmp_path: Path, ingester: Ingester, store: ChromaStore
) -> None:
    doc = write(tmp_path / "coe" / "a.md", markdown("old-id", "Body text."))
    ingester.sync(tmp_path)
    doc.write_text(markdown("new-id", "Body text."))
    report = ingester.sync(tmp_path)
    assert [e["doc_id"] for e in report.added] == ["new-id"]
    assert [e["doc_id"] for e in report.removed] == ["old-id"]
    assert [r.doc_id for r in store.documents()] == ["new-id"]
    assert_consistent(store)


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4, 5])  # the run makes 5 writes
def test_a_run_killed_at_any_write_converges_on_the_next(
    tmp_path: Path,
    ingester: Ingester,
    store: ChromaStore,
    embedder: SentenceTransformerEmbedder,
    fail_at: int,
) -> None:
    root = _tree(tmp_path)
    ingester.sync(root)
    doc = root / "finance" / "ap-guide.md"
    doc.write_text(doc.read_text() + "\n## Exceptions\n\nPrice variances over 2% go to AP.\n")
    (root / "it" / "gateway.html").unlink()
    (root / "it" / "gateway.html.meta.yaml").unlink()
    with pytest.raises(Interrupted):
        Ingester(InterruptingStore(store, fail_at), embedder).sync(root)
    ingester.sync(root)
    assert_consistent(store)
    assert store.document("gateway") is None
    assert any("2%" in text for _, text, _ in store.document_chunks("ap-guide"))


def test_a_half_written_document_that_turns_bad_is_not_left_mixed(
    tmp_path: Path, ingester: Ingester, store: ChromaStore, embedder: SentenceTransformerEmbedder
) -> None:
    doc = write(tmp_path / "coe" / "a.md", markdown("a", "# A\n\n" + "Old text. " * 200))
    ingester.sync(tmp_path)
    doc.write_text(markdown("a", "# A\n\n" + "New text. " * 300))
    with pytest.raises(Interrupted):  # dies after the new chunks, before the old ones go
        Ingester(InterruptingStore(store, 3), embedder).sync(tmp_path)
    doc.write_text("---\nowner: [unclosed\n---\n")
    report = ingester.sync(tmp_path)
    assert "half-written" in report.failed[0].reason
    assert store.documents() == []
    assert_consistent(store)


def test_missing_folder_is_a_clear_error(ingester: Ingester, tmp_path: Path) -> None:
    from index.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="not a folder"):
        ingester.sync(tmp_path / "nope")


@pytest.mark.parametrize("name", ["coe/vanishing.md", "coe/vanishing.pdf"])
def test_a_file_removed_mid_run_is_that_files_failure(
    tmp_path: Path, ingester: Ingester, store: ChromaStore, name: str
) -> None:
    root = _tree(tmp_path)
    doc = root / name
    if doc.suffix == ".md":
        write(doc, markdown("vanishing", "# Vanishing\n\nHere when hashed, gone when read."))
    else:
        make_pdf(doc, [[SECTIONS[0]]])
        write(doc.with_name(doc.name + ".meta.yaml"), "doc_type: faq\nowner: A\n")

    def remove_it(done: int, total: int, rel: str) -> None:
        if rel == name:  # hashed already; about to be parsed
            doc.unlink()

    report = ingester.sync(root, progress=remove_it)
    assert [f.path for f in report.failed] == [name]
    assert report.failed[0].reason == "cannot read: No such file or directory"
    assert len(report.added) == 5  # the rest of the batch went in
    assert store.document("vanishing") is None
    assert_consistent(store)
