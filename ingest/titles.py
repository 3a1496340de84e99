"""A document's title when its metadata declares none.

In order: the title the file declares (PDF document information, DOCX core properties, HTML
<title>) when it is a real title (not empty, "Untitled", "Microsoft Word - Document1.docx" or
boilerplate); on a regulatory filing, the filer's name above "(Exact name of registrant as
specified in its charter)"; the first heading near the top that is not boilerplate; a readable
form of the file name. A title without a year gets the reporting period the top of the document
states ("For the quarterly period ended March 31, 2026", a "Q1 2026" heading): reports and
filings of one organisation differ only in their period, and the title is embedded and
keyword-indexed with every chunk.

Boilerplate is a heading that says what kind of document this is, or where it was filed, but
not which one: legal cover text ("UNITED STATES SECURITIES AND EXCHANGE COMMISSION", "FORM
10-Q", "Washington, D.C. 20549", "(Mark One)"), "Table of contents", and headings made only of
generic document words ("Quarterly report", "Executive summary", "Confidential"). Matching is on
letters and digits alone, so words the PDF text layer glued together still match.
"""

from __future__ import annotations

import itertools
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


_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_DATE = (
    rf"(?:(?:{_MONTHS})\s+\d{{1,2}},?\s+(?:19|20)\d\d|\d{{1,2}}\s+(?:{_MONTHS})\s+(?:19|20)\d\d)"
)
# The formal statement of a reporting period, anywhere near the top ("For the quarterly period
# ended March 31, 2026", "for the fiscal year ended 30 June 2025", "six months ended ...").
_PERIOD_ENDED = re.compile(
    rf"\b((?:quarterly\s+|annual\s+|reporting\s+|fiscal\s+)?(?:period|quarter|year)|"
    rf"(?:three|six|nine|twelve)\s+months)\s+ended\s+({_DATE})",
    re.I,
)
# A period as a heading of its own ("Q1 2026", "Second quarter 2026", "FY2025"): only as a
# whole heading, since a sentence may name any period.
_PERIOD_HEADING = re.compile(
    r"^(?:q[1-4]\s*(?:fy\s*)?(?:19|20)\d\d|(?:first|second|third|fourth)\s+quarter\s+(?:of\s+)?"
    r"(?:fiscal\s+)?(?:19|20)\d\d|(?:fy|fiscal\s+year)\s*(?:19|20)\d\d)$",
    re.I,
)
_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
PERIOD_BLOCKS = 40  # the top of a document: a filing's cover page is 20 to 30 blocks


def stated_period(blocks: Sequence[Block]) -> str | None:
    """The reporting period stated at the top of a document, in its own words ("quarterly
    period ended March 31, 2026"), or None."""
    top = [b for b in blocks if b.page is None or b.page <= CANDIDATE_PAGES][:PERIOD_BLOCKS]
    for block in top:
        text = " ".join(block.text.split())
        if block.kind == "heading" and _PERIOD_HEADING.match(text):
            return text
        if match := _PERIOD_ENDED.search(text):
            return f"{' '.join(match.group(1).split()).lower()} ended {match.group(2)}"
    return None


def with_period(title: str, blocks: Sequence[Block]) -> str:
    """The title, followed by its stated period when the title names no year."""
    if _YEAR.search(title):
        return title
    period = stated_period(blocks)
    return f"{title}, {period}" if period else title


def _letters(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def is_boilerplate(heading: str) -> bool:
    """True when a heading names a kind of document or a filing formality, not a document."""
    key = _letters(heading)
    if not key or key == "unitedstates" or any(part in key for part in _COVER_TEXT):
        return True
    if _FORM.match(key):
        return True
    words = re.findall(r"[a-z]+", heading.lower())
    return all(w in _GENERIC for w in words)


def _usable(heading: str) -> bool:
    words = heading.split()
    return 0 < len(words) <= TITLE_MAX_WORDS and bool(re.search(r"[A-Za-z]{2}", heading))


# The caption a filing's cover puts under the filer's name, in whatever font the name is in.
_NAME_CAPTION = re.compile(r"^\(?\s*exact name of (?:the )?registrant", re.I)


def registrant(blocks: Sequence[Block]) -> str | None:
    """The filer's name on a regulatory filing's cover: the line above the caption "(Exact
    name of registrant as specified in its charter)", or None."""
    top = [b for b in blocks if b.page is None or b.page <= 1][:PERIOD_BLOCKS]
    for above, block in itertools.pairwise(top):
        if _NAME_CAPTION.match(block.text.strip()):
            name = above.text.strip().splitlines()[-1].strip() if above.text.strip() else ""
            return name if _usable(name) and not is_boilerplate(name) else None
    return None


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
    title = (
        declared_title(path, fmt)
        or registrant(blocks)
        or first_heading(blocks)
        or readable_name(path)
    )
    return with_period(title, blocks)
