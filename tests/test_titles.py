"""Titles of documents whose metadata declares none: boilerplate skipped, the file's own title
read, a readable file name last. Real PDF, DOCX and HTML files."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.embedding import CachedEmbedder, SentenceTransformerEmbedder
from index.store import ChromaStore
from ingest.parsing import Block, parse
from ingest.sync import Ingester
from ingest.titles import declared_title, first_heading, infer_title, is_boilerplate
from tests.samples import make_docx, make_html, make_pdf

BODY = ["Net revenue rose 12% to 4.1 million euros over the quarter."]


@pytest.mark.parametrize(
    "heading",
    [
        "UNITED STATES SECURITIES AND EXCHANGE COMMISSION",
        "UNITED STATESSECURITIES AND EXCHANGE COMMISSIONWashington, D.C. 20549",  # glued
        "Washington, D.C. 20549",
        "FORM 10-Q",
        "Form 8-K",
        "Table of contents",
        "Table of",
        "TABLE OFCONTENTS",
        "(Mark One)",
        "Quarterly Report",
        "ANNUAL REPORT 2024",
        "Executive summary",
        "Confidential - for internal use only",
        "2024",
    ],
)
def test_boilerplate_headings(heading: str) -> None:
    assert is_boilerplate(heading)


@pytest.mark.parametrize(
    "heading",
    ["Northwind Traders Ltd", "Apple Inc.", "Contoso Pharmaceuticals - Q3 2024", "Chatbot FAQ"],
)
def test_headings_that_name_a_document(heading: str) -> None:
    assert not is_boilerplate(heading)


def test_first_heading_skips_cover_text_and_stays_near_the_top() -> None:
    blocks = [
        Block("UNITED STATES SECURITIES AND EXCHANGE COMMISSION", "heading", 0, 1),
        Block("FORM 10-Q", "heading", 0, 1),
        Block("Table of contents", "heading", 0, 1),
        Block("Kestrel Components plc", "heading", 0, 1),
        Block("Results", "heading", 1, 2),
    ]
    assert first_heading(blocks) == "Kestrel Components plc"
    late = [Block("FORM 10-Q", "heading", 0, 1), Block("Kestrel Components plc", "heading", 0, 3)]
    assert first_heading(late) is None


def _pdf(path: Path, title: str | None, headings: list[str]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    if title is not None:
        pdf.set_title(title)
    pdf.add_page()
    for heading in headings:
        pdf.set_font("Helvetica", "B", 16)
        pdf.multi_cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, BODY[0], new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))
    return path


def test_pdf_title_from_its_metadata_then_headings_then_file_name(tmp_path: Path) -> None:
    cover = ["UNITED STATES SECURITIES AND EXCHANGE COMMISSION", "FORM 10-Q"]
    declared = _pdf(tmp_path / "a.pdf", "Kestrel Components plc - Q2 2025", cover)
    assert (
        infer_title(declared, "pdf", parse(declared, "pdf")) == "Kestrel Components plc - Q2 2025"
    )
    junk = _pdf(
        tmp_path / "b.pdf", "Microsoft Word - Document1.docx", [*cover, "Osprey Freight AG"]
    )
    assert declared_title(junk, "pdf") is None
    assert infer_title(junk, "pdf", parse(junk, "pdf")) == "Osprey Freight AG"
    bare = _pdf(tmp_path / "osprey_freight-2025_q2.pdf", None, cover)
    assert infer_title(bare, "pdf", parse(bare, "pdf")) == "osprey freight 2025 q2"


def test_docx_and_html_titles(tmp_path: Path) -> None:
    import docx

    path = make_docx(tmp_path / "d.docx", "Executive summary", [("Scope", BODY)])
    document = docx.Document(str(path))
    document.core_properties.title = "Heron Logistics annual review 2024"
    document.save(str(path))
    assert infer_title(path, "docx", parse(path, "docx")) == "Heron Logistics annual review 2024"
    page = make_html(tmp_path / "p.html", "Table of contents", [("Overview", BODY)])
    page.write_text(page.read_text().replace("<title>Table of contents", "<title>Heron FAQ"))
    assert infer_title(page, "html", parse(page, "html")) == "Heron FAQ"


def test_ingested_pdfs_of_one_template_get_their_own_titles(
    tmp_path: Path, store: ChromaStore, embedder: SentenceTransformerEmbedder
) -> None:
    cover = ["QUARTERLY REPORT", "Table of contents", "Executive summary"]
    make_pdf(tmp_path / "heron-logistics-2024-q3.pdf", [[(h, BODY) for h in cover]])
    _pdf(tmp_path / "osprey.pdf", "Osprey Freight AG - Q1 2025", cover)
    report = Ingester(store, CachedEmbedder(embedder)).sync(tmp_path)
    assert report.failed == []
    titles = {r.path: r.meta.title for r in store.documents()}
    assert titles == {
        "heron-logistics-2024-q3.pdf": "heron logistics 2024 q3",
        "osprey.pdf": "Osprey Freight AG - Q1 2025",
    }
