"""A PDF's text as lines with their font and place on the page, read with PDFium (pypdfium2).

Why PDFium and not pdfminer (unstructured's "fast" strategy, which we used before): our whole
PDF parse on PDFium, layout included, takes 7 to 8 times less CPU per page than pypdf's page
text (the plain LlamaIndex pipeline's reader) and about 30 times less than unstructured on
pdfminer, and PDFium puts the spaces between words itself, so words come out unglued
(evals/README.md, "PDF parsing speed (issue 12)"). PDFium gives the text in reading order with a
line break after each line; the structure (headings, paragraphs, list items, tables) is
recovered from the lines' fonts and positions by ingest/pdflayout.py and ingest/pdftables.py.

Per line we ask PDFium for a handful of values (font size, font name, the baseline, the first
and last character's boxes) rather than for every character, which would cost more than the
text itself. Characters are only visited one by one on the rare lines whose text PDFium keeps
in several pieces with wide gaps between them (table rows), to find the cells.
"""

from __future__ import annotations

import ctypes
import re
import threading
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

# PDFium's marks for a word hyphenated across a line break ("cutting\x02edge"); the hyphen
# was printed, so it stays.
_HYPHEN_MARKS = str.maketrans({"\x02": "-", "\ufffe": "-"})
_LINE = re.compile(r"[^\r\n]+")
_BOLD_NAMES = re.compile(r"bold|black|heavy|semibold|demi", re.I)
BOLD_WEIGHT = 600  # PDFium's weight of a bold font face (400 is regular; 0 when unknown)
# Two pieces of one line are two table cells when the gap between them is wider than this many
# times the font size: a word space is about a quarter of it, and a cell's text may run up to
# its column's padding. On corpus/ PDFs 0.6 to 1.0 find all 154 table rows of their sources, 1.2
# misses one (a cell that nearly reaches the next column), and none makes a table in contoso_hr.
CELL_GAP_EM = 0.8


@dataclass(frozen=True)
class Cell:
    left: float
    text: str


@dataclass(frozen=True)
class Line:
    """One line of text on a page. Coordinates are PDF points from the page's bottom left."""

    text: str
    size: float  # font size of the line's first character, in points
    bold: bool  # its first and last characters are bold
    left: float
    right: float
    baseline: float  # of its first character
    end_baseline: float  # of its last: lower when PDFium joined a word hyphenated over two lines
    cells: tuple[Cell, ...] = ()  # the line's pieces when it has wide gaps (a table row)


# PDFium is not thread-safe (pypdfium2's documentation: use processes, not threads, to read PDFs
# in parallel). Ingests are serialised already (api/deps.py `ingest_lock`); this keeps any other
# caller in another thread from crashing the process.
_PDFIUM = threading.Lock()


class PdfReadError(Exception):
    """PDFium could not open the file (corrupt, encrypted, not a PDF)."""


def read_pages(path: Path) -> list[list[Line]]:
    """The lines of each page, in PDFium's reading order. Raises PdfReadError."""
    import pypdfium2 as pdfium

    with _PDFIUM:
        try:
            pdf = pdfium.PdfDocument(path)
        except pdfium.PdfiumError as exc:
            raise PdfReadError(str(exc)) from exc
        try:
            return [_page_lines(pdf, index) for index in range(len(pdf))]
        finally:
            pdf.close()


def _page_lines(pdf: Any, index: int) -> list[Line]:
    page = pdf[index]
    textpage = page.get_textpage()
    try:
        text = textpage.get_text_range()
        return [line for span in _LINE.finditer(text) if (line := _line(textpage, span))]
    finally:
        textpage.close()
        page.close()


def _line(textpage: Any, span: re.Match[str]) -> Line | None:
    raw_text = span.group(0)
    text = _clean(raw_text)
    if not text:
        return None
    lead = len(raw_text) - len(raw_text.lstrip())
    first = _char_index(textpage, span.start() + lead)
    last = _char_index(textpage, span.start() + len(raw_text.rstrip()) - 1)
    if first < 0 or last < first:
        return Line(text, 0.0, False, 0.0, 0.0, 0.0, 0.0)
    size, bold = _font(textpage, first)
    bold = bold and _font(textpage, last)[1]  # the whole line, not a bold lead-in word
    left = textpage.get_charbox(first)[0]
    right = textpage.get_charbox(last)[2]
    cells = _cells(textpage, first, last, size)
    baseline, end_baseline = _baseline(textpage, first), _baseline(textpage, last)
    return Line(text, size, bold, left, right, baseline, end_baseline, cells)


def _char_index(textpage: Any, text_index: int) -> int:
    """PDFium's character index of a position in the extracted text (the two differ when PDFium
    leaves characters out of the text or puts some in)."""
    import pypdfium2.raw as pdfium_c

    return int(pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage, text_index))


def _font(textpage: Any, index: int) -> tuple[float, bool]:
    import pypdfium2.raw as pdfium_c

    size = round(float(pdfium_c.FPDFText_GetFontSize(textpage, index)), 1)
    if pdfium_c.FPDFText_GetFontWeight(textpage, index) >= BOLD_WEIGHT:
        return size, True
    name = ctypes.create_string_buffer(128)
    flags = ctypes.c_int()
    pdfium_c.FPDFText_GetFontInfo(textpage, index, name, len(name), ctypes.byref(flags))
    return size, bool(_BOLD_NAMES.search(name.value.decode("latin-1")))


def _baseline(textpage: Any, index: int) -> float:
    import pypdfium2.raw as pdfium_c

    x, y = ctypes.c_double(), ctypes.c_double()
    if pdfium_c.FPDFText_GetCharOrigin(textpage, index, ctypes.byref(x), ctypes.byref(y)):
        return float(y.value)
    return float(textpage.get_charbox(index)[1])


def _cells(textpage: Any, first: int, last: int, size: float) -> tuple[Cell, ...]:
    """The line's cells when PDFium keeps it in several pieces with wide gaps between them;
    () for an ordinary line."""
    import pypdfium2.raw as pdfium_c

    gap = CELL_GAP_EM * max(size, 1.0)
    if not _wide_gap(textpage, first, last, gap):
        return ()
    cells: list[tuple[float, list[str]]] = []
    previous_right: float | None = None
    for index in range(first, last + 1):
        char = chr(pdfium_c.FPDFText_GetUnicode(textpage, index))
        left, _, right, _ = textpage.get_charbox(index)
        if right > left and not char.isspace():
            if previous_right is None or left - previous_right > gap:
                cells.append((left, []))
            previous_right = right
        if cells:
            cells[-1][1].append(char)
    found = tuple(Cell(left, _clean("".join(chars))) for left, chars in cells)
    return found if len(found) > 1 else ()


def _wide_gap(textpage: Any, first: int, last: int, gap: float) -> bool:
    """Whether PDFium keeps the line in pieces (one per text object) with a wide gap between
    two of them; a cheap test before visiting the line's characters."""
    count = textpage.count_rects(first, last - first + 1)  # get_rect reads this range's pieces
    if count < 2:
        return False
    boxes = sorted(textpage.get_rect(i) for i in range(count))
    return any(right[0] - left[2] > gap for left, right in pairwise(boxes))


def _clean(text: str) -> str:
    return " ".join(text.translate(_HYPHEN_MARKS).split())
