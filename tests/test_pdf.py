"""PDFs read with PDFium: headings by font, paragraphs, list items, tables and page numbers right,
on PDFs written line by line with fpdf2, and the shipped PDFs measured against their sources."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pypdf import PdfReader

from evals.bench_pdf import source_blocks
from evals.pdf_quality import Tally, against_pypdf, against_source
from index.errors import DocumentError
from ingest.blocks import Block
from ingest.parsing import parse

REPO = Path(__file__).resolve().parents[1]
LINE_MM = 6  # baseline to baseline, about 1.5 times an 11-point font
BODY = [  # paragraphs of two or three lines, wrapped by fpdf2 at the margin
    "The gateway keeps prompts and answers for ninety days before deleting them for good. "
    "Requests over the monthly quota are refused until the first day of the next month, and "
    "each department names one owner who approves new applications.",
    "Applications reach the models only through the gateway, which logs every call with the "
    "application, the user and the number of tokens, so that costs can be charged back.",
    "Security reviews every new application before it goes live, and again once a year.",
]


class Writer:
    """A PDF written one line at a time, so that line breaks and gaps are exactly known."""

    def __init__(self) -> None:
        from fpdf import FPDF

        self.pdf = FPDF()
        self.pdf.core_fonts_encoding = "windows-1252"  # has the bullet character
        self.pdf.add_page()

    def line(self, text: str, size: float = 11, style: str = "", x: float | None = None) -> None:
        self.pdf.set_font("Helvetica", style, size)
        if x is not None:
            self.pdf.set_x(x)
        self.pdf.cell(0, max(LINE_MM, size * 0.5), text, new_x="LMARGIN", new_y="NEXT")

    def gap(self, mm: float = 5) -> None:
        self.pdf.ln(mm)

    def paragraph(self, text: str) -> None:
        self.pdf.set_font("Helvetica", "", 11)
        self.pdf.multi_cell(0, LINE_MM, text, new_x="LMARGIN", new_y="NEXT")
        self.gap()

    def save(self, path: Path) -> Path:
        self.pdf.output(str(path))
        return path


def _kinds(blocks: list[Block], kind: str) -> list[str]:
    return [b.text for b in blocks if b.kind == kind]


def test_headings_are_found_by_their_font_and_standing_alone(tmp_path: Path) -> None:
    doc = Writer()
    doc.line("Gateway operations guide", 20, "B")
    doc.gap()
    doc.line("1. Retention", 14, "B")
    doc.paragraph(BODY[0])
    doc.line("1.1 Prompts and answers", 12, "B")
    doc.paragraph(BODY[1])
    doc.line("Exceptions", 11, "B")
    doc.paragraph(BODY[2])
    doc.line("Questions or Concerns")  # plain text, alone: a heading, as unstructured made it
    doc.gap()
    doc.paragraph(BODY[0])
    doc.pdf.add_page()
    doc.line("2. Quotas", 14, "B")
    doc.paragraph(BODY[1])
    blocks = parse(doc.save(tmp_path / "guide.pdf"), "pdf")
    headings = [(b.text, b.depth, b.page) for b in blocks if b.kind == "heading"]
    assert headings == [  # depth 0 throughout: ingest/pdflayout.py says why
        ("Gateway operations guide", 0, 1),
        ("1. Retention", 0, 1),
        ("1.1 Prompts and answers", 0, 1),
        ("Exceptions", 0, 1),
        ("Questions or Concerns", 0, 1),
        ("2. Quotas", 0, 2),
    ]
    assert BODY[1] in _kinds(blocks, "text")


def test_a_heading_wrapped_at_the_margin_is_one_heading_across_a_loose_leading(
    tmp_path: Path,
) -> None:
    """A filing's item heading wraps at the margin with 1.9 font sizes of leading; two short
    headings as far apart stay two (a cover's company name and period)."""
    doc = Writer()
    doc.pdf.set_font("Helvetica", "B", 12)
    heading = (
        "Item 2. Management's Discussion and Analysis of Financial Condition and Results of "
        "Operations"
    )
    doc.pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
    doc.paragraph(BODY[0])
    doc.pdf.set_font("Helvetica", "B", 12)
    doc.pdf.multi_cell(0, 8, "Northbridge Tools Inc.", new_x="LMARGIN", new_y="NEXT")
    doc.pdf.multi_cell(0, 8, "Quarterly report", new_x="LMARGIN", new_y="NEXT")
    doc.paragraph(BODY[1])
    blocks = parse(doc.save(tmp_path / "filing.pdf"), "pdf")
    assert _kinds(blocks, "heading") == [heading, "Northbridge Tools Inc.", "Quarterly report"]


def test_lines_join_into_paragraphs_that_end_at_a_gap_or_a_short_line(tmp_path: Path) -> None:
    doc = Writer()
    doc.paragraph(BODY[0])
    doc.paragraph(BODY[1])
    doc.line("A short line that closes a sentence ends its paragraph.")
    doc.pdf.multi_cell(0, LINE_MM, BODY[2], new_x="LMARGIN", new_y="NEXT")
    blocks = parse(doc.save(tmp_path / "p.pdf"), "pdf")
    assert _kinds(blocks, "text") == [
        BODY[0],
        BODY[1],
        "A short line that closes a sentence ends its paragraph.",
        BODY[2],
    ]


def test_list_items_bullets_numbers_and_a_number_inside_a_sentence(tmp_path: Path) -> None:
    doc = Writer()
    doc.line("The panel scored every vendor and gave Stratus AI a weighted score of 4.20 out of")
    doc.line("5. Meridian Cloud AI came second, with a score that the panel found close.")
    doc.gap()
    doc.line("To request access:")
    doc.line("1. Ask your manager for approval of the application.")
    doc.line("2. File a ticket with the IT service desk.")
    doc.gap()
    doc.line("\u2022 Prompts are kept for ninety days, then deleted for good by the")
    doc.line("gateway itself.")
    doc.line("\u2022 Answers are kept as long as the prompts.")
    doc.gap()
    doc.line("- Quotas reset monthly.")
    blocks = parse(doc.save(tmp_path / "l.pdf"), "pdf")
    assert _kinds(blocks, "list") == [
        "1. Ask your manager for approval of the application.",
        "2. File a ticket with the IT service desk.",
        "- Prompts are kept for ninety days, then deleted for good by the gateway itself.",
        "- Answers are kept as long as the prompts.",
        "- Quotas reset monthly.",
    ]
    assert "out of 5. Meridian Cloud AI came second" in _kinds(blocks, "text")[0]


def test_a_word_hyphenated_over_two_lines_is_one_word(tmp_path: Path) -> None:
    doc = Writer()
    doc.line("Contoso builds reliable and efficient cutting-")
    doc.line("edge systems for commercial and military aircraft of every size.")
    blocks = parse(doc.save(tmp_path / "h.pdf"), "pdf")
    assert "efficient cutting-edge systems for" in blocks[0].text


def test_a_table_is_one_block_with_a_line_per_row(tmp_path: Path) -> None:
    doc = Writer()
    doc.paragraph(BODY[0])
    doc.pdf.set_font("Helvetica", size=9)
    with doc.pdf.table(first_row_as_headings=True, line_height=4.5) as table:
        for row in [
            ("Vendor", "Price", "Verdict"),
            ("DocuSift", "GBP 0.045 per page", "selected for invoices and delivery notes in 2025"),
            ("PaperTrail", "GBP 0.06 per page", "rejected"),
            ("Self-hosted OCR", "hardware only", "kept as the fallback"),
        ]:
            cells = table.row()
            for text in row:
                cells.cell(text)
    doc.gap()
    doc.paragraph(BODY[1])
    blocks = parse(doc.save(tmp_path / "t.pdf"), "pdf")
    assert [b.kind for b in blocks] == ["text", "table", "text"]
    assert blocks[1].text.splitlines() == [
        "Vendor | Price | Verdict",
        "DocuSift | GBP 0.045 per page | selected for invoices and delivery notes in 2025",
        "PaperTrail | GBP 0.06 per page | rejected",
        "Self-hosted OCR | hardware only | kept as the fallback",
    ]


def test_page_numbers_and_running_footers_are_dropped(tmp_path: Path) -> None:
    from fpdf import FPDF

    class Numbered(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", size=9)
            self.cell(0, 6, str(self.page_no()), align="R", new_x="LMARGIN", new_y="NEXT")

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", size=9)
            self.cell(0, 6, f"Gateway operations guide - page {self.page_no()} of 3")

    pdf = Numbered()
    for page in range(1, 4):
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, LINE_MM, BODY[page - 1], new_x="LMARGIN", new_y="NEXT")
    path = tmp_path / "n.pdf"
    pdf.output(str(path))
    blocks = parse(path, "pdf")
    assert [(b.text, b.page) for b in blocks] == [(BODY[page - 1], page) for page in range(1, 4)]


@pytest.mark.parametrize("content", [b"%PDF-1.7\n this is not really a pdf", b"", b"PK\x03\x04"])
def test_a_corrupt_pdf_fails_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "minutes.pdf"
    path.write_bytes(content)
    with pytest.raises(DocumentError, match="cannot parse as pdf") as caught:
        parse(path, "pdf")
    assert caught.value.path == str(path)


def _measured(paths: list[Path]) -> Counter[str]:
    tally = Tally.empty()
    for path in paths:
        blocks = parse(path, "pdf")
        pages = [page.extract_text() or "" for page in PdfReader(path).pages]
        tally.add(against_pypdf(blocks, pages))
        source = source_blocks(path)
        if source is not None:
            tally.add(against_source(blocks, source))
    return tally.counts


def test_shipped_pdfs_keep_every_word_on_its_page_and_their_sources_structure() -> None:
    """Floors under what evals/bench_pdf.py measures (evals/README.md, "PDF parsing speed")."""
    corpus = sorted((REPO / "corpus").rglob("*.pdf"))
    lookalike = sorted((REPO / "evals" / "datasets" / "lookalike" / "docs").glob("*.pdf"))
    assert len(corpus) >= 6
    assert len(lookalike) == 12
    c = _measured(corpus + lookalike)
    assert c["pages_with_text"] == c["pages_with_text_reference"] == c["pages"]
    assert c["blocks_without_page"] == 0
    assert c["blocks_on_their_page"] == c["blocks_checked"] == c["blocks"]
    # pypdf keeps the running footers of corpus/ PDFs ("Kestrel Components - coe - ... | page
    # 2/11"), which are dropped: 1.6% of its words.
    assert c["reference_found"] >= 0.98 * c["reference_words"]
    assert c["our_found"] >= 0.999 * c["our_words"]
    assert c["glued"] == 0
    assert c["source_headings"] >= 100
    assert c["source_headings_found"] == c["source_headings"]
    assert c["our_headings_in_source"] >= 0.85 * c["our_headings"]
    assert c["source_items_found"] >= 0.95 * c["source_items"]
    assert c["source_rows"] >= 100
    assert c["source_rows_found"] >= 0.9 * c["source_rows"]


def test_lookalike_reports_have_their_sections_as_headings_on_their_pages() -> None:
    from tests.test_lookalike import generator

    sections = generator().SECTIONS
    for path in sorted((REPO / "evals" / "datasets" / "lookalike" / "docs").glob("*.pdf")):
        pages = [page.extract_text() or "" for page in PdfReader(path).pages]
        headings = [b for b in parse(path, "pdf") if b.kind == "heading"]
        found = [h for h in headings if h.text in sections]
        assert [h.text for h in found] == list(sections), path.name
        assert all(h.page is not None and h.text in pages[h.page - 1] for h in found), path.name
