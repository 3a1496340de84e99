"""Tables in a PDF page's lines, as one "a | b | c" line per row (the form the other formats'
tables take, ingest/parsing.py `table_text`, and the one the extractive composer reads).

A table is a run of lines around one that PDFium keeps in pieces with wide gaps between them
(`Line.cells`, ingest/pdftext.py): the other such lines, and the lines in the same font size
that start in one of their columns or right of the first, next to them: the second and later
lines of wrapped cells, and the cells PDFium left on lines of their own. It takes two such
lines at least, one of them with cells or starting in a later column. Its columns are where
the cells start. Rows follow reading order, which runs cell by cell through a row: a piece that
starts in an earlier column than the piece before it opens a new row.

Known limit: a table whose wrapped rows PDFium reads line by line across the whole row (rather
than cell by cell) gets the second line of each such row as a row of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from ingest.pdftext import Cell, Line

# Lines with cells, or cells alone in a later column; a single line with cells and nothing in
# its columns is a line with a wide gap, not a table.
MIN_ROWS = 2
COLUMN_TOLERANCE = 4.0  # points: cells of one column start this close to each other
SIZE_TOLERANCE = 0.5  # points
# A line further above or below the table than this many times its font size is not part of
# it (cells centred vertically in a row of wrapped cells sit up to about 2.5 sizes away).
REACH_EM = 3.0


def find_tables(lines: Sequence[Line]) -> list[range]:
    """The index ranges of a page's lines that are tables, in order."""
    found: list[range] = []
    index = 0
    while index < len(lines):
        span = _table_at(lines, index, found[-1].stop if found else 0)
        if span is None:
            index += 1
        else:
            found.append(span)
            index = span.stop
    return found


def _table_at(lines: Sequence[Line], start: int, floor: int) -> range | None:
    """The table around a line with cells at `start`, not reaching above `floor`."""
    if not lines[start].cells:
        return None
    size = lines[start].size
    columns = _starts(lines[start].cells)
    top = bottom = lines[start].baseline
    rows = 1
    end = start + 1
    while end < len(lines):
        line = lines[end]
        if line.cells and abs(line.size - size) <= SIZE_TOLERANCE:
            columns = _merge(columns, _starts(line.cells))
            rows += 1
        elif not _belongs(line, columns, size, top, bottom):
            break
        elif line.left > columns[0] + COLUMN_TOLERANCE:
            rows += 1  # a cell on a line of its own, in a later column: tabular too
        top, bottom = max(top, line.baseline), min(bottom, line.baseline)
        end += 1
    if rows < MIN_ROWS:
        return None
    while start > floor and _belongs(lines[start - 1], columns, size, top, bottom):
        start -= 1
        top = max(top, lines[start].baseline)
    return range(start, end)


def rows_text(lines: Sequence[Line]) -> str:
    """The table's rows, one per line, cells joined by " | "."""
    columns = sorted({round(c.left, 1) for line in lines for c in line.cells})
    columns = _merge([], columns)
    rows: list[list[list[str]]] = []
    previous = len(columns)
    for piece in _pieces(lines):
        column = _column(piece.left, columns)
        if column < previous or not rows:
            rows.append([[] for _ in columns])
        rows[-1][column].append(piece.text)
        previous = column
    return "\n".join(" | ".join(" ".join(cell) for cell in row) for row in rows)


def _pieces(lines: Sequence[Line]) -> list[Cell]:
    return [c for line in lines for c in (line.cells or (Cell(line.left, line.text),))]


def _starts(cells: Sequence[Cell]) -> list[float]:
    return sorted(round(c.left, 1) for c in cells)


def _merge(columns: list[float], more: list[float]) -> list[float]:
    """Column starts, keeping one of any two closer than the tolerance."""
    merged: list[float] = []
    for x in sorted([*columns, *more]):
        if not merged or x - merged[-1] > COLUMN_TOLERANCE:
            merged.append(x)
    return merged


def _column(left: float, columns: Sequence[float]) -> int:
    """The last column starting at or before `left` (a cell may be indented or right-aligned
    within its column)."""
    found = 0
    for index, start in enumerate(columns):
        if start <= left + COLUMN_TOLERANCE:
            found = index
    return found


def _belongs(line: Line, columns: Sequence[float], size: float, top: float, bottom: float) -> bool:
    """A line without cells is part of the table when it has the table's font size, lies
    within a few lines of it, starts in one of its columns or right of the first, and ends
    before the next column starts (a paragraph line runs across the columns)."""
    near = bottom - REACH_EM * size <= line.baseline <= top + REACH_EM * size
    in_column = any(abs(line.left - x) <= COLUMN_TOLERANCE for x in columns)
    column = _column(line.left, columns)
    fits = column + 1 >= len(columns) or line.right <= columns[column + 1] + COLUMN_TOLERANCE
    return (
        abs(line.size - size) <= SIZE_TOLERANCE
        and near
        and fits
        and (in_column or line.left > columns[0] + COLUMN_TOLERANCE)
    )
