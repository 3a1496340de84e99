"""Titles of documents whose metadata declares none: boilerplate skipped, the file's own title
read, a readable file name last. Real PDF, DOCX and HTML files."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.embedding import CachedEmbedder, SentenceTransformerEmbedder
from index.store import ChromaStore
from ingest.parsing import Block, parse
from ingest.sync import Ingester
from ingest.titles import (
    declared_title,
    first_heading,
    infer_title,
    is_boilerplate,
    registrant,
    stated_period,
    with_period,
)
from tests.samples import make_docx, make_html, make_pdf

BODY = ["Net revenue rose 12% to 4.1 million euros over the quarter."]


@pytest.mark.parametrize(
    "heading",
    [
        "UNITED STATES SECURITIES AND EXCHANGE COMMISSION",
        "UNITED STATES",  # the first line of the same, on a line of its own
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
    [
        "Northwind Traders Ltd",
        "Apple Inc.",
        "Contoso Pharmaceuticals - Q3 2024",
        "Chatbot FAQ",
        "United States Steel Corporation",
    ],
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


@pytest.mark.parametrize(
    ("text", "kind", "period"),
    [
        (
            "For the quarterly period ended March 31, 2026",
            "text",
            "quarterly period ended March 31, 2026",
        ),
        ("[X] QUARTERLY REPORT ... For the Quarterly Period Ended June 30, 2025 or", "text",
         "quarterly period ended June 30, 2025"),
        ("for the fiscal year ended 30 June 2025.", "text", "fiscal year ended 30 June 2025"),
        ("Results for the six months ended September 30, 2024", "text",
         "six months ended September 30, 2024"),
        ("Q3 2024", "heading", "Q3 2024"),
        ("Second quarter 2026", "heading", "Second quarter 2026"),
        ("FY2025", "heading", "FY2025"),
    ],
)  # fmt: skip
def test_the_stated_period_is_read_from_the_top(text: str, kind: str, period: str) -> None:
    blocks = [Block("Kestrel Components plc", "heading", 0, 1), Block(text, kind, 0, 1)]
    assert stated_period(blocks) == period
    assert with_period("Kestrel Components plc", blocks) == f"Kestrel Components plc, {period}"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("The pilot ran in Q3 2024 and ended in March.", "text"),  # a sentence naming a quarter
        ("Q3 2024", "text"),  # not a heading
        ("The project ended March 31, 2026.", "text"),  # "ended" without a period before it
        ("Our first quarter of work", "heading"),
    ],
)
def test_a_period_merely_mentioned_is_not_the_documents(text: str, kind: str) -> None:
    assert stated_period([Block(text, kind, 0, 1)]) is None


def test_a_title_that_names_a_year_keeps_its_own_and_the_period_is_near_the_top() -> None:
    stated = [Block("For the quarter ended March 31, 2026", "text", 0, 1)]
    assert (
        with_period("Kestrel Components plc - Q2 2025", stated)
        == "Kestrel Components plc - Q2 2025"
    )
    late = [Block("For the quarter ended March 31, 2026", "text", 0, 3)]
    assert with_period("Kestrel Components plc", late) == "Kestrel Components plc"


def test_a_filings_cover_names_its_registrant_whatever_its_font() -> None:
    cover = [
        Block("UNITED STATES SECURITIES AND EXCHANGE COMMISSION", "heading", 0, 1),
        Block("FORM 10-Q", "heading", 0, 1),
        Block("Commission File Number: 001-36743", "text", 0, 1),
        Block("Kestrel Components, Inc.", "text", 0, 1),
        Block("(Exact name of registrant as specified in its charter)", "text", 0, 1),
        Block("Item 2. Management's Discussion and Analysis", "heading", 1, 2),
    ]
    assert registrant(cover) == "Kestrel Components, Inc."
    assert registrant(cover[:3]) is None
    boiler = [Block("FORM 10-Q", "text", 0, 1), *cover[4:5]]
    assert registrant(boiler) is None


def test_filings_of_one_filer_are_told_apart_by_their_period() -> None:
    """The filings look-alike set (scripts/build_lookalike.py --style filing): accession
    numbers for file names, the registrant's name as one line of legal text."""
    folder = Path(__file__).resolve().parents[1] / "evals" / "datasets" / "lookalike-filings"
    titles = sorted(
        infer_title(path, "pdf", parse(path, "pdf")) for path in (folder / "docs").glob("*.pdf")
    )
    assert len(titles) == len(set(titles)) == 12
    assert "Northbridge Tools Inc., quarterly period ended June 30, 2026" in titles


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
