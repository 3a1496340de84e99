"""The one sentence splitter: chunking, the excerpts a model reads, the extractive composer and
the citation checker all cut text the same way, so a sentence the checker looks for in a
source is a sentence the composer could have quoted.

Text splits into lines first (a line break always ends a sentence: list items, table rows and
headings are lines), then each line at a full stop, question or exclamation mark followed by
a space and a capital, digit, quote, bracket or markdown emphasis. A stop does not end a
sentence after a list number opening the line ("1."), a single letter ("A."), or an
abbreviation ("e.g.", "etc.", "vs.", "Dr."); "No." ends one unless a number follows
("No. 5")."""

from __future__ import annotations

import re

# A list marker at the start of a line: "- ", "* ", "1. ", "2) ".
# One marker or several: a numbered item of a DOCX list reads "- 1. Copy the template".
LIST_MARKER = re.compile(r"^\s*(?:(?:[-*\u2022]|\d+[.)])\s+)+")

_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(*\u201c])")
_ABBREVIATION = re.compile(
    r"(?:^\d+|(?:^|\s)(?:[a-z]|e\.g|i\.e|etc|vs|dr|mr|mrs|ms|approx|cf))\.$", re.I
)
_NUMBER_ABBREVIATION = re.compile(r"(?:^|\s)no\.$", re.I)


def split_line(line: str) -> list[str]:
    """The sentences of one line, stripped."""
    pieces = _BREAK.split(line.strip())
    merged: list[str] = []
    for piece in pieces:
        if merged and _continues(merged[-1], piece):
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return [m.strip() for m in merged if m.strip()]


def _continues(before: str, after: str) -> bool:
    """Whether the stop ending `before` is not a sentence end."""
    if _ABBREVIATION.search(before):
        return True
    return bool(_NUMBER_ABBREVIATION.search(before)) and after[:1].isdigit()


def split_sentences(text: str) -> list[str]:
    """The sentences of a text: lines, then sentences within a line."""
    return [sentence for line in text.splitlines() for sentence in split_line(line)]


def strip_list_marker(line: str) -> str:
    return LIST_MARKER.sub("", line)
