"""Files to structured text blocks: PDFs with PDFium (ingest/pdftext.py, ingest/pdflayout.py),
every other format with unstructured.

Every supported format becomes a list of `Block`s (heading, paragraph, list item, table) with
the heading depth and, for PDFs, the page. A file that yields no text is an error, never an
empty document: a scanned PDF has no text layer, and unstructured returns zero elements without
complaint when one of its dependencies is missing.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections import defaultdict
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from index.errors import DocumentError
from ingest import wordglue
from ingest.blocks import Block
from ingest.furniture import furniture_key, running_lines
from ingest.htmltree import MAX_DEPTH, shallow_html
from ingest.pdflayout import pdf_blocks
from ingest.pdftext import PdfReadError, read_pages

FORMATS: dict[str, str] = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".docx": "docx",
    ".pdf": "pdf",
}
TEXT_FORMATS = {"markdown", "text"}
_SKIPPED = {"PageBreak", "PageNumber", "Image"}
log = logging.getLogger("kb.ingest")


def format_of(path: Path) -> str | None:
    return FORMATS.get(path.suffix.lower())


_BOMS = (  # longest first: UTF-32 LE starts like UTF-16 LE
    (codecs.BOM_UTF32_LE, None, "UTF-32"),
    (codecs.BOM_UTF32_BE, None, "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
_RESAVE = "re-save the file as UTF-8"


def decode_text(path: Path, data: bytes) -> str:
    """Text read as UTF-8 (with or without a byte-order mark) or UTF-16 with its byte-order
    mark; DocumentError naming the encoding problem for anything else."""
    codec, name = "utf-8", "UTF-8"
    for bom, bom_codec, bom_name in _BOMS:
        if data.startswith(bom):
            if bom_codec is None:
                raise DocumentError(path, f"{bom_name} text is not read; {_RESAVE}")
            codec, name = bom_codec, bom_name
            break
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1]
        if codec == "utf-8" and _looks_like_utf16(data):
            reason = f"looks like UTF-16 without a byte-order mark; {_RESAVE} (or UTF-16 with one)"
        else:
            reason = f"not valid {name} (byte {exc.start}: {bad!r}); {_RESAVE}"
        raise DocumentError(path, reason) from exc
    if "\x00" in text:
        if _looks_like_utf16(data):
            reason = f"looks like UTF-16 without a byte-order mark; {_RESAVE} (or UTF-16 with one)"
            raise DocumentError(path, reason)
        raise DocumentError(path, "contains NUL bytes: this is a binary file, not text")
    return text


def _looks_like_utf16(data: bytes) -> bool:
    """Most of the even or of the odd bytes are NUL: ASCII-range text in UTF-16."""
    sample = data[:4096]
    if len(sample) < 4:
        return False
    half = len(sample) // 2
    return max(sample[0::2].count(0), sample[1::2].count(0)) > 0.8 * half


def parse(path: Path, fmt: str, body: str | None = None) -> list[Block]:
    """Blocks of a file. `body` is the already decoded text (front matter removed) for
    Markdown and plain text."""
    try:
        if fmt not in TEXT_FORMATS:
            path.open("rb").close()  # a missing file is a read error, whatever the parser says
        if fmt == "pdf":
            blocks = _pdf_blocks(path)
        else:
            blocks = elements_to_blocks(_partition(path, fmt, body))
    except DocumentError:
        raise
    except OSError as exc:
        raise DocumentError(path, f"cannot read: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise DocumentError(path, f"cannot parse as {fmt}: {type(exc).__name__}: {exc}") from exc
    if not any(b.text.strip() for b in blocks):
        hint = " (a scanned PDF without a text layer: run OCR on it first)" if fmt == "pdf" else ""
        raise DocumentError(path, f"parsed to no text{hint}; nothing to index")
    return blocks


def _pdf_blocks(path: Path) -> list[Block]:
    """PDFium's lines read into blocks (ingest/pdftext.py, ingest/pdflayout.py), with words the
    text layer glued together split again (ingest/wordglue.py)."""
    try:
        pages = read_pages(path)
    except PdfReadError as exc:
        raise DocumentError(path, f"cannot parse as pdf: {exc}") from exc
    blocks = pdf_blocks(pages)
    vocab = wordglue.vocabulary(b.text for b in blocks)
    return [replace(b, text=wordglue.repair(b.text, vocab)) for b in blocks]


def _partition(path: Path, fmt: str, body: str | None) -> list[Any]:
    if fmt == "markdown":
        from unstructured.partition.md import partition_md

        return list(partition_md(text=body or "", languages=["eng"]))
    if fmt == "text":
        from unstructured.partition.text import partition_text

        return list(partition_text(text=body or "", languages=["eng"]))
    if fmt == "html":
        return _partition_html(path)
    if fmt == "docx":
        from unstructured.partition.docx import partition_docx

        return list(partition_docx(filename=str(path), languages=["eng"]))
    raise DocumentError(path, f"unsupported format '{fmt}'")


def _partition_html(path: Path) -> list[Any]:
    """unstructured's HTML partitioner, on a flattened copy of a page nested too deep for it
    (ingest/htmltree.py)."""
    from unstructured.partition.html import partition_html
    from unstructured.partition.text import partition_text

    try:
        text = decode_text(path, path.read_bytes())
    except DocumentError:  # another declared encoding: unstructured detects it
        text = None
    if text is None:
        return list(partition_html(filename=str(path), languages=["eng"]))
    flattened = shallow_html(text)
    if flattened is None:
        return list(partition_html(text=text, languages=["eng"]))
    kind, content = flattened
    how = "with its wrapper tags removed" if kind == "html" else "as plain text"
    log.info("%s: HTML nested over %d levels deep, read %s", path, MAX_DEPTH, how)
    if kind == "html":
        return list(partition_html(text=content, languages=["eng"]))
    return list(partition_text(text=content, languages=["eng"]))


def elements_to_blocks(elements: list[Any]) -> list[Block]:
    """unstructured's elements as blocks, without page furniture (evals/bench_pdf.py also reads
    PDFs this way, as the product did before issue 12)."""
    running = _running_headers(elements)
    blocks: list[Block] = []
    for el in elements:
        category = type(el).__name__
        text = (el.text or "").strip()
        page = getattr(el.metadata, "page_number", None)
        if category in _SKIPPED or not text:
            continue
        if page is not None and furniture_key(text) in running:
            continue
        if category == "Title":
            depth = el.metadata.category_depth or 0
            blocks.append(Block(text, "heading", depth, page))
        elif category == "ListItem":
            blocks.append(Block(f"- {text}", "list", 0, page))
        elif category == "Table":
            html = getattr(el.metadata, "text_as_html", None)
            blocks.append(Block(table_text(html) if html else text, "table", 0, page))
        else:
            blocks.append(Block(text, "text", 0, page))
    return blocks


def _running_headers(elements: list[Any]) -> set[str]:
    by_page: dict[int, list[str]] = defaultdict(list)
    for el in elements:
        page = getattr(el.metadata, "page_number", None)
        text = (el.text or "").strip()
        if page is not None and text:
            by_page[page].append(text)
    return running_lines(by_page)


class _TableText(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None:
            if not self.rows:
                self.rows.append([])
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_text(html: str) -> str:
    """A table as one line per row, cells joined by ' | ' (keeps rows readable for a reader
    and for the embedding model, unlike unstructured's flattened cell soup)."""
    parser = _TableText()
    parser.feed(html)
    lines = [" | ".join(cell for cell in row) for row in parser.rows if any(row)]
    return "\n".join(lines) if lines else re.sub(r"<[^>]+>", " ", html).strip()
