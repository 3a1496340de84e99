"""A document's title when its metadata declares none.

In order: the title the file declares (PDF document information, DOCX core properties, HTML
<title>) when it is a real title (not empty, "Untitled", "Microsoft Word - Document1.docx" or
boilerplate); the first heading near the top that is not boilerplate; a readable form of the
file name.

Boilerplate is a heading that says what kind of document this is, or where it was filed, but
not which one: legal cover text ("UNITED STATES SECURITIES AND EXCHANGE COMMISSION", "FORM
10-Q", "Washington, D.C. 20549", "(Mark One)"), "Table of contents", and headings made only of
generic document words ("Quarterly report", "Executive summary", "Confidential"). Matching is on
letters and digits alone, so words the PDF text layer glued together still match.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from ingest.parsing import Block

log = logging.getLogger("kb.ingest")

# Candidate headings: the first few, on the first two pages (a cover page, then the first
# page of content). A title is short.
CANDIDATE_HEADINGS = 12
CANDIDATE_PAGES = 2
TITLE_MAX_WORDS = 20

_COVER_TEXT = (  # compared on lowercase letters and digits only
    "unitedstatessecuritiesandexchangecommission",
    "securitiesandexchangecommission",
    "washingtondc",
    "commissionfilenumber",
    "markone",
    "pursuanttosection",
    "exactnameofregistrant",
    "stateorotherjurisdiction",
    "irsemployer",
    "tableofcontents",
    "indextofinancialstatements",
)
_FORM = re.compile(r"^form\d+[a-z]?$")  # FORM 10-Q, Form 8-K, FORM 20F
_GENERIC = frozenset(
    (
        "a", "an", "and", "annual", "appendix", "board", "by", "confidential", "contents",
        "continued", "directors", "document", "draft", "executive", "final", "financial", "for",
        "form", "highlights", "in", "internal", "interim", "introduction", "of", "only", "overview",
        "page", "part", "prepared", "private", "proprietary", "public", "quarterly", "report",
        "reports", "review", "section", "statement", "statements", "strictly", "summary", "table",
        "the", "to", "unaudited", "use", "version",
    )
)  # fmt: skip
_JUNK_FILE_TITLES = re.compile(
    r"^(untitled.*|document\d*|title|slide \d+|powerpoint presentation|pdf|none|null|\W*)$", re.I
)
_APP_PREFIX = re.compile(r"^(microsoft (word|powerpoint|excel) - )", re.I)


def _letters(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def is_boilerplate(heading: str) -> bool:
    """True when a heading names a kind of document or a filing formality, not a document."""
    key = _letters(heading)
    if not key or any(part in key for part in _COVER_TEXT) or _FORM.match(key):
        return True
    words = re.findall(r"[a-z]+", heading.lower())
    return all(w in _GENERIC for w in words)


def _usable(heading: str) -> bool:
    words = heading.split()
    return 0 < len(words) <= TITLE_MAX_WORDS and bool(re.search(r"[A-Za-z]{2}", heading))


def first_heading(blocks: Sequence[Block]) -> str | None:
    """The first heading near the top of the document that is not boilerplate."""
    headings = [
        b.text.strip()
        for b in blocks
        if b.kind == "heading" and (b.page is None or b.page <= CANDIDATE_PAGES)
    ][:CANDIDATE_HEADINGS]
    return next((h for h in headings if _usable(h) and not is_boilerplate(h)), None)


def declared_title(path: Path, fmt: str) -> str | None:
    """The title the file itself declares (PDF info, DOCX core properties, HTML <title>), if
    it is a real one. Never raises: a title is a nicety, the parse reports broken files."""
    try:
        raw = _read_declared(path, fmt)
    except Exception as exc:  # any reader error: the file's problems are reported by parse
        log.debug("%s: no declared title (%s)", path, exc)
        return None
    if not raw:
        return None
    title = " ".join(_APP_PREFIX.sub("", raw).split())
    title = re.sub(r"\.(docx?|pdf|pptx?|html?)$", "", title, flags=re.I)
    if _JUNK_FILE_TITLES.match(title) or not _usable(title) or is_boilerplate(title):
        return None
    return title


def _read_declared(path: Path, fmt: str) -> str | None:
    if fmt == "pdf":
        from pypdf import PdfReader

        info = PdfReader(path).metadata
        return str(info.title) if info and info.title else None
    if fmt == "docx":
        import docx

        return str(docx.Document(str(path)).core_properties.title or "") or None
    if fmt == "html":
        head = path.read_bytes()[:65536].decode("utf-8", errors="ignore")
        match = re.search(r"<title[^>]*>(.*?)</title>", head, re.I | re.S)
        if match:
            import html

            return html.unescape(match.group(1))
    return None


def readable_name(path: Path) -> str:
    """A title from a file name: `q3_2024-report.final.pdf` -> `q3 2024 report final`."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    words = re.sub(r"[_\-.]+", " ", stem).split()
    return " ".join(words) or path.name


def infer_title(path: Path, fmt: str, blocks: Sequence[Block]) -> str:
    return declared_title(path, fmt) or first_heading(blocks) or readable_name(path)
