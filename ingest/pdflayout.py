"""A PDF's lines (ingest/pdftext.py) as blocks: headings, paragraphs, list items and tables.

PDFium gives lines, not structure; the structure comes from the lines' fonts and spacing,
measured per document:

- body text is the font (size, bold or not) that carries the most characters on lines of
  several words, and the usual distance between its baselines is the line spacing;
- a heading is a short run of up to three lines in a font larger than the body's, or bold when
  the body is not. A one-line paragraph in body font that reads like a title (short,
  capitalised, no closing full stop or comma: "Questions or Concerns") is a heading too, as
  unstructured's title rule made it. Every heading has depth 0, as unstructured gave PDF
  headings: nested by font rank, a PDF's sections grow to hold their subsections, context
  assembly (assistant/context.py) brings such a section in whole, and a comparison's second
  document no longer fits the word budget (evals/README.md, "PDF parsing speed (issue 12)");
- a paragraph ends at a vertical gap wider than the line spacing, at a change of font size, or
  after a line that closes a sentence where the next line's first word would have fitted;
- a list item starts at a line opening with a bullet or a number ("•", "-", "1.", "(a)") and
  takes the lines after it up to a paragraph break; bullets become "- ";
- tables: ingest/pdftables.py;
- a first page of a few lines, all in heading fonts (a cover), is one heading.

Running headers, footers and page numbers are dropped first (ingest/furniture.py). Blocks never
span pages, so each keeps its page.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from ingest.blocks import Block
from ingest.furniture import furniture_key, running_lines
from ingest.pdftables import find_tables, rows_text
from ingest.pdftext import Cell, Line

Style = tuple[float, bool]  # font size rounded to half a point, bold
# The thresholds below were set on contoso_hr (Word PDFs) and corpus/ (fpdf2 PDFs), where
# evals/bench_pdf.py checks the headings, list items and table rows of corpus/ PDFs against the
# Markdown they are built from (evals/README.md, "PDF parsing speed (issue 12)").
# Body text is the font of most characters on lines of at least this many words: headings are
# shorter, and a short document may have more characters in its headings than in its text.
BODY_LINE_WORDS = 8
LARGER = 1.1  # a heading font is at least this much larger than the body's (11 -> 12 points)
SECOND_BODY = 0.5  # a font carrying more than this share of the body's characters is body text
# A heading is at most this many lines and words; more in a heading font is a paragraph.
HEADING_LINES = 3
HEADING_WORDS = 25
COVER_LINES = 8  # a cover page has a few lines (contoso_hr's have two or three)
TITLE_WORDS = 12  # a one-line paragraph read as a heading (unstructured's title limit)
# ... or, ending with a colon, a label ("Exceptions:", "Out of scope:"), not a sentence leading
# into a list ("The following are forbidden in marketing content:").
LABEL_WORDS = 4
# Paragraph lines sit 1.2 to 1.5 font sizes apart and paragraphs have a blank line or some
# spacing between them: a gap over 1.35 times the usual line spacing ends a paragraph.
PARAGRAPH_GAP = 1.35
# Lines of one heading are closer than 1.5 font sizes; a cover's company name and period,
# 1.67 apart, are two headings.
HEADING_GAP = 1.5
# ... unless the line above ran to the right margin: the margin wrapped it, so the next line of
# the same font carries on the heading across a looser leading ("... and Results of" /
# "Operations", 1.9 font sizes apart in a filing's item heading).
WRAPPED_HEADING_GAP = 2.5
CHAR_EM = 0.5  # average width of a character, in font sizes (about Helvetica's and Times')
# A bullet, dash or star opening a list item, PDF fonts' private-use bullet (U+F0B7) included,
# or a number or letter. Wider than index/sentences.py's LIST_MARKER, which reads our own text,
# where these have already become "- " and "1.".
_BULLET = re.compile(
    r"^[\u2022\u25cf\u25aa\u25e6\u2023\u2219\u00b7\u25cb\u25a0\u25a1\u27a2\u25ba\u2713\u2756\uf0b7*\u2013\u2014-]\s+"
)
_NUMBER = re.compile(r"^(?:\(?\d{1,2}[.)]|\(?[a-z]\)|\(?[ivx]{1,4}\))\s+")  # 1. 2) (3) a) (iv)
_SENTENCE_END = (".", "!", "?", ":")
_NOT_TITLE_END = (".", ",", ";")


@dataclass(frozen=True)
class Styles:
    """What a document's fonts mean: body text, its line spacing, the headings' fonts."""

    body: Style
    spacing: float  # usual distance between baselines of body lines, in font sizes
    headings: frozenset[Style] = frozenset()

    def pitch(self, size: float) -> float:
        return self.spacing * (size or self.body[0])


def pdf_blocks(pages: Sequence[Sequence[Line]]) -> list[Block]:
    """Blocks of a PDF, page by page."""
    pages = [[_unmarked(line) for line in lines] for lines in _without_furniture(pages)]
    styles = measure(pages)
    blocks: list[Block] = []
    if len(pages) > 1 and _is_cover(pages[0], styles):
        blocks.append(Block(" ".join(line.text for line in pages[0]), "heading", 0, 1))
        pages = [[], *pages[1:]]
    for number, lines in enumerate(pages, start=1):
        blocks += _PageReader(lines, number, styles).blocks()
    return blocks


def _is_cover(lines: Sequence[Line], styles: Styles) -> bool:
    """A first page of a few lines, all in heading fonts: "Contoso Electronics" over
    "Northwind Health Plus Plan". It makes one heading, the document's title."""
    words = sum(len(line.text.split()) for line in lines)
    return (
        0 < len(lines) <= COVER_LINES
        and words <= HEADING_WORDS
        and all(_heading_font(style_of(line), styles.body) for line in lines)
    )


def _without_furniture(pages: Sequence[Sequence[Line]]) -> list[list[Line]]:
    running = running_lines({n: [line.text for line in ls] for n, ls in enumerate(pages, 1)})
    return [[ln for ln in ls if furniture_key(ln.text) not in running] for ls in pages]


def _unmarked(line: Line) -> Line:
    """A list item whose marker stands apart from its text ("•", a tab, "Gym memberships") is a
    list item, not a table row: the marker joins the cell after it."""
    cells = line.cells
    if len(cells) < 2 or _list_item(f"{cells[0].text} x") is None or " " in cells[0].text:
        return line
    joined = Cell(cells[0].left, f"{cells[0].text} {cells[1].text}")
    rest = (joined, *cells[2:])
    return replace(line, cells=rest if len(rest) > 1 else ())


def style_of(line: Line) -> Style:
    return (round(line.size * 2) / 2, line.bold)


def measure(pages: Sequence[Sequence[Line]]) -> Styles:
    chars = _chars_by_style(pages, BODY_LINE_WORDS) or _chars_by_style(pages, 1)
    if not chars:
        return Styles((0.0, False), 1.2)
    body = chars.most_common(1)[0][0]
    every = _chars_by_style(pages, 1)
    candidates = [
        style
        for style, count in every.items()
        if count <= SECOND_BODY * every[body] and _heading_font(style, body)
    ]
    return Styles(body, _spacing(pages, body), frozenset(candidates))


def _chars_by_style(pages: Sequence[Sequence[Line]], min_words: int) -> Counter[Style]:
    chars: Counter[Style] = Counter()
    for lines in pages:
        for line in lines:
            if not line.cells and line.size > 0 and len(line.text.split()) >= min_words:
                chars[style_of(line)] += len(line.text)
    return chars


def _heading_font(style: Style, body: Style) -> bool:
    size, bold = style
    return size >= body[0] * LARGER or (bold and not body[1] and size >= body[0] - 0.5)


def _spacing(pages: Sequence[Sequence[Line]], body: Style) -> float:
    """The most common distance between consecutive body lines, in font sizes."""
    drops: Counter[float] = Counter()
    for lines in pages:
        for above, below in pairwise(lines):
            if style_of(above)[0] == body[0] == style_of(below)[0]:
                drop = above.end_baseline - below.baseline
                if 0 < drop < 3 * body[0]:
                    drops[round(drop / body[0], 2)] += 1
    return drops.most_common(1)[0][0] if drops else 1.2


@dataclass
class _Open:
    kind: str  # "text" | "list"
    texts: list[str]
    last: Line


class _PageReader:
    """One page's lines to blocks, in order."""

    def __init__(self, lines: Sequence[Line], page: int, styles: Styles) -> None:
        self.lines = lines
        self.page = page
        self.styles = styles
        self.right = _right_margin(lines, styles)
        self.tables = {span.start: span for span in find_tables(lines)}
        self.out: list[Block] = []
        self.open: _Open | None = None

    def blocks(self) -> list[Block]:
        index = 0
        while index < len(self.lines):
            index = self._table(index) or self._heading(index) or self._line(index)
        self._flush()
        return self.out

    def _table(self, index: int) -> int | None:
        span = self.tables.get(index)
        if span is None:
            return None
        self._flush()
        self.out.append(Block(rows_text(self.lines[span.start : span.stop]), "table", 0, self.page))
        return span.stop

    def _heading(self, index: int) -> int | None:
        first = self.lines[index]
        if style_of(first) not in self.styles.headings:
            return None
        end = index + 1
        while end < len(self.lines) and end - index <= HEADING_LINES:
            line, above = self.lines[end], self.lines[end - 1]
            if style_of(line) != style_of(first) or not self._heading_continues(above, line):
                break
            end += 1
        text = " ".join(line.text for line in self.lines[index:end])
        if len(text.split()) > HEADING_WORDS or end - index > HEADING_LINES:
            return None  # a paragraph in a larger font
        self._flush()
        self.out.append(Block(text, "heading", 0, self.page))
        return end

    def _heading_continues(self, above: Line, line: Line) -> bool:
        drop = above.end_baseline - line.baseline
        wrapped = self.right - above.right <= 2 * CHAR_EM * above.size
        gap = WRAPPED_HEADING_GAP if wrapped else HEADING_GAP
        return 0 < drop <= gap * line.size and not line.cells

    def _line(self, index: int) -> int:
        line = self.lines[index]
        item = _list_item(line.text)
        if item is not None and self._inside_sentence(line):
            item = None  # "... a score of 4.20 out of / 5. Meridian came second": not an item
        if item is not None:
            self._flush()
            self.open = _Open("list", [item], line)
        elif self.open and self._continues(self.open.last, line):
            self.open.texts.append(line.text)
            self.open.last = line
        else:
            self._flush()
            self.open = _Open("text", [line.text], line)
        return index + 1

    def _inside_sentence(self, line: Line) -> bool:
        """A numbered line that carries on a paragraph which does not announce a list."""
        open_ = self.open
        return (
            open_ is not None
            and open_.kind == "text"
            and not _BULLET.match(line.text)
            and not open_.last.text.endswith(":")
            and self._continues(open_.last, line)
        )

    def _continues(self, above: Line, line: Line) -> bool:
        if abs(above.size - line.size) > 0.5:
            return False
        drop = above.end_baseline - line.baseline
        if drop <= 0 or drop > PARAGRAPH_GAP * self.styles.pitch(line.size):
            return False
        return not (above.text.endswith(_SENTENCE_END) and self._ends_early(above, line))

    def _ends_early(self, above: Line, line: Line) -> bool:
        """The line above stops where the next line's first word would have fitted: the writer
        ended it, not the margin."""
        word = line.text.split()[0]
        return self.right - above.right > (len(word) + 1) * CHAR_EM * line.size

    def _flush(self) -> None:
        if self.open is None:
            return
        text = " ".join(self.open.texts)
        if self.open.kind == "list":
            self.out.append(Block(text, "list", 0, self.page))
        elif len(self.open.texts) == 1 and reads_like_title(text):
            self.out.append(Block(text, "heading", 0, self.page))
        else:
            self.out.append(Block(text, "text", 0, self.page))
        self.open = None


def _right_margin(lines: Sequence[Line], styles: Styles) -> float:
    """Where the page's body lines end at the most (tables and headings may reach further)."""
    body = [ln.right for ln in lines if not ln.cells and abs(ln.size - styles.body[0]) <= 0.5]
    return max(body or [ln.right for ln in lines] or [0.0])


def _list_item(text: str) -> str | None:
    """The item's text with a bullet as "- " (numbers stay), or None when the line opens no
    list item."""
    bullet = _BULLET.match(text)
    if bullet:
        rest = text[bullet.end() :].strip()
        return f"- {rest}" if rest else None
    return text if _NUMBER.match(text) else None


def reads_like_title(text: str) -> bool:
    """A line that could be a heading on its own: short, opening with a capital or a digit,
    mostly letters, not closing like a sentence or a clause (a colon only after a few words)."""
    words = text.split()
    letters = sum(c.isalpha() for c in text)
    most = LABEL_WORDS if text.endswith(":") else TITLE_WORDS
    return (
        0 < len(words) <= most
        and (text[0].isupper() or text[0].isdigit())
        and not text.endswith(_NOT_TITLE_END)
        and letters >= 0.5 * len(text.replace(" ", ""))
    )
