"""Page furniture: running headers and footers, and page numbers, which are not content.

A line is furniture when it opens or closes a page and, numbers aside, opens or closes at least
half of the pages (and two or more): "Acme - page 3/11", "Quarterly report | Confidential",
"12". A numbered line must either be a bare page number ("7", "Page 7", "7 of 12", "- 7 -") or
have enough words to be a running title, so that a numbered heading opening each page
("Chapter 3", "Heading 2") stays.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

MAX_CHARS = 120  # a running header or footer is one short line
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(
    r"^[-\u2013\u2014\s]*(page\s*)?\d+(\s*(of|/)\s*\d+)?[-\u2013\u2014\s]*$", re.I
)


def furniture_key(text: str) -> str:
    """What a running line has in common from page to page: lowercase, numbers as '#'."""
    return _DIGITS.sub("#", text.strip().lower())


def _could_be_furniture(text: str) -> bool:
    if len(text) > MAX_CHARS:
        return False
    if not _DIGITS.search(text) or _PAGE_NUMBER.match(text):
        return True
    return len(re.findall(r"[A-Za-z]{2,}", text)) >= 3


def running_lines(pages: Mapping[int, Sequence[str]]) -> set[str]:
    """Keys (`furniture_key`) of the first or last lines that repeat over the pages given as
    {page number: its lines in reading order}."""
    seen: dict[str, set[int]] = defaultdict(set)
    for page, texts in pages.items():
        if not texts:
            continue
        for text in {texts[0].strip(), texts[-1].strip()}:
            if text and _could_be_furniture(text):
                seen[furniture_key(text)].add(page)
    pages_with_candidates = {p for found in seen.values() for p in found}
    needed = max(2, len(pages_with_candidates) // 2)
    return {key for key, found in seen.items() if len(found) >= needed}
