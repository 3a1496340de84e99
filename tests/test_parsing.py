"""Every format parses to structured, non-empty text; bad files fail with the file named."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import pytest

from index.errors import DocumentError
from ingest import wordglue
from ingest.parsing import decode_text, parse, table_text
from tests.samples import make_blank_pdf, make_docx, make_html, make_pdf

SECTIONS = [
    ("Data preparation", ["Export invoices from LedgerOne as CSV with vendor ids."]),
    ("Go-live checklist", ["Confirm the confidence threshold is 0.85 before go-live."]),
]


def _texts(blocks: list) -> str:  # type: ignore[type-arg]
    return "\n".join(b.text for b in blocks)


def test_markdown_headings_lists_and_tables() -> None:
    body = (
        "# Guide\n\nIntro text.\n\n## Steps\n\n1. Export data\n2. Clean it\n\n"
        "### Details\n\n| system | owner |\n|---|---|\n| LedgerOne | Finance |\n"
    )
    blocks = parse(Path("guide.md"), "markdown", body)
    headings = [(b.text, b.depth) for b in blocks if b.kind == "heading"]
    assert headings == [("Guide", 0), ("Steps", 1), ("Details", 2)]
    assert "- Export data" in _texts(blocks)
    table = next(b for b in blocks if b.kind == "table")
    assert table.text.splitlines() == ["system | owner", "LedgerOne | Finance"]


def test_plain_text() -> None:
    blocks = parse(Path("notes.txt"), "text", "Vendor shortlist.\n\nDocuSift won on accuracy.\n")
    assert "DocuSift won on accuracy." in _texts(blocks)


def test_html(tmp_path: Path) -> None:
    blocks = parse(make_html(tmp_path / "p.html", "Chatbot FAQ", SECTIONS), "html")
    headings = [b.text for b in blocks if b.kind == "heading"]
    assert headings[:2] == ["Chatbot FAQ", "Data preparation"]
    assert "0.85" in _texts(blocks)


def test_docx(tmp_path: Path) -> None:
    blocks = parse(make_docx(tmp_path / "d.docx", "Vendor scorecard", SECTIONS), "docx")
    headings = [(b.text, b.depth) for b in blocks if b.kind == "heading"]
    assert headings == [("Vendor scorecard", 0), ("Data preparation", 1), ("Go-live checklist", 1)]
    assert "LedgerOne" in _texts(blocks)


def test_pdf_keeps_page_numbers(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "g.pdf", [[SECTIONS[0]], [SECTIONS[1]]])
    blocks = parse(path, "pdf")
    pages = {b.page for b in blocks if "LedgerOne" in b.text} | {
        b.page for b in blocks if "0.85" in b.text
    }
    assert pages == {1, 2}


def test_pdf_without_text_is_an_error_not_an_empty_document(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="no text") as caught:
        parse(make_blank_pdf(tmp_path / "scan.pdf"), "pdf")
    assert caught.value.path.endswith("scan.pdf")


@pytest.mark.parametrize(
    ("name", "fmt", "content"),
    [
        ("broken.pdf", "pdf", b"%PDF-1.7\n this is not really a pdf"),
        ("broken.docx", "docx", b"PK\x03\x04 not a zip archive"),
        ("empty.pdf", "pdf", b""),
        ("empty.docx", "docx", b""),
    ],
)
def test_corrupt_or_empty_binary_files_are_errors(
    tmp_path: Path, name: str, fmt: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DocumentError) as caught:
        parse(path, fmt)
    assert caught.value.path == str(path)


def test_empty_markdown_is_an_error() -> None:
    with pytest.raises(DocumentError, match="no text"):
        parse(Path("empty.md"), "markdown", "   \n\n")


def test_wrong_encoding_is_reported_with_the_byte() -> None:
    with pytest.raises(DocumentError, match="UTF-8") as caught:
        decode_text(Path("latin.txt"), "caf\xe9 cr\xe8me".encode("latin-1"))
    assert "byte 3" in caught.value.reason


def test_binary_disguised_as_text_is_refused() -> None:
    with pytest.raises(DocumentError, match="binary"):
        decode_text(Path("x.md"), b"\x00\x01\x02abc")


def test_table_html_to_rows() -> None:
    html = "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td> 2 </td></tr></table>"
    assert table_text(html) == "a | b\n1 | 2"


def test_running_page_footers_are_dropped(tmp_path: Path) -> None:
    from fpdf import FPDF

    class Report(FPDF):
        def footer(self) -> None:
            self.set_y(-15)
            self.cell(0, 6, f"Kestrel Components - finance | page {self.page_no()}/4")

    pdf = Report()
    for page in range(1, 5):
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        for line in (
            f"Heading {page}",
            f"Body of page {page} about DocuSift thresholds and queues.",
            f"Step {page}: more body text here.",
        ):
            pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    path = tmp_path / "f.pdf"
    pdf.output(str(path))
    texts = "\n".join(b.text for b in parse(path, "pdf"))
    assert "Kestrel Components" not in texts
    assert texts.count("Body of page") == 4
    assert texts.count("Step ") == 4
    assert texts.count("Heading ") == 4  # numbered headings at the top of a page stay


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
    ],
)
def test_utf8_and_utf16_with_a_byte_order_mark_are_read(encoding: str, bom: bytes) -> None:
    text = "# Congés payés\n\nLeave requests go through PeopleCore — 25 days a year.\n"
    decoded = decode_text(Path("leave.md"), bom + text.encode(encoding))
    assert decoded == text
    blocks = parse(Path("leave.md"), "markdown", decoded)
    assert blocks[0].text == "Congés payés"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ("Congés".encode("utf-16-le"), "UTF-16 without a byte-order mark"),
        ("Congés".encode("utf-32"), "UTF-32 text is not read"),
        (codecs.BOM_UTF16_LE + b"\x00\xd8", "not valid UTF-16"),  # a lone surrogate
        ("Congés".encode("cp1252"), "not valid UTF-8 \\(byte 4"),
    ],
)
def test_other_encodings_fail_naming_the_problem(data: bytes, needle: str) -> None:
    with pytest.raises(DocumentError, match=needle) as caught:
        decode_text(Path("leave.txt"), data)
    assert "re-save the file as UTF-8" in caught.value.reason
    assert caught.value.path == "leave.txt"


def test_utf16_html_is_read(tmp_path: Path) -> None:
    page = tmp_path / "p.html"
    make_html(page, "Chatbot FAQ", SECTIONS)
    page.write_bytes(codecs.BOM_UTF16_LE + page.read_text().encode("utf-16-le"))
    assert "0.85" in _texts(parse(page, "html"))


@pytest.mark.parametrize("wrapper", ["<div class='x'>", "<section><div>", "<ul><li>"])
def test_deeply_nested_html_keeps_its_text(tmp_path: Path, wrapper: str) -> None:
    closing = "".join(f"</{t}>" for t in reversed(re.findall(r"<(\w+)", wrapper)))
    page = tmp_path / "deep.html"
    page.write_text(
        "<html><head><title>Deep</title></head><body><h1>Gateway FAQ</h1>"
        + wrapper * 5000
        + "<p>The gateway keeps prompts for 90 days.</p>"
        + closing * 5000
        + "<p>Ask the IT service desk for exceptions.</p></body></html>",
        encoding="utf-8",
    )
    texts = _texts(parse(page, "html"))
    assert "The gateway keeps prompts for 90 days." in texts
    assert "Ask the IT service desk for exceptions." in texts
    assert "Gateway FAQ" in texts


def test_words_glued_by_the_pdf_text_layer_are_split_again() -> None:
    texts = [
        "UNITED STATESSECURITIES AND EXCHANGE COMMISSIONWashington, D.C. 20549",
        "Shares of the company trade in the United States; the securities are listed.",
        "DocuSift, PowerPoint and ClauseWise stay whole. So does NOTEBOOK.",
    ]
    vocab = wordglue.vocabulary(texts)
    assert [wordglue.repair(t, vocab) for t in texts] == [
        "UNITED STATES SECURITIES AND EXCHANGE COMMISSION Washington, D.C. 20549",
        texts[1],
        texts[2],
    ]
