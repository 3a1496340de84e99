"""Words the PDF text layer glued together, split again.

Some PDFs place each line as its own run of text with no space or line break between runs,
and the text comes out as "UNITED STATESSECURITIES AND EXCHANGE COMMISSIONWashington". Two
kinds are repaired, both conservatively (body text of contoso_hr and corpus/ PDFs, 102k words,
has none: scripts/measure_glued_words.py):

- a capitalised word glued to the end of an upper-case one ("COMMISSIONWashington");
- an upper-case word that the document never uses, made of two upper-case words of at least
  four letters that it uses on their own ("STATESSECURITIES").

Camel-case names ("DocuSift", "PowerPoint") are left alone. PDFium, which reads PDFs since
issue 12 and places spaces from the characters' positions, glues no words in those PDFs either
(evals/bench_pdf.py); the repair stays for text layers that glue words whatever reads them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

MIN_PART = 4  # shorter halves ("AN", "OUT") would split real compounds
_CAPS_THEN_WORD = re.compile(r"\b([A-Z]{2,})([A-Z][a-z]{2,})")
_WORD = re.compile(r"[A-Za-z]+")
_CAPS = re.compile(r"\b[A-Z]{8,}\b")


def vocabulary(texts: Iterable[str]) -> Counter[str]:
    """How often each word (lowercase) occurs in a document's texts."""
    return Counter(w.lower() for text in texts for w in _WORD.findall(text))


def repair(text: str, vocab: Counter[str]) -> str:
    text = _CAPS_THEN_WORD.sub(lambda m: _split_caps_then_word(m, vocab), text)
    return _CAPS.sub(lambda m: _split_caps(m.group(0), vocab), text)


def _split_caps_then_word(match: re.Match[str], vocab: Counter[str]) -> str:
    caps, word = match.groups()
    if vocab[(caps + word).lower()] > 1:  # a word the document uses as it is
        return match.group(0)
    return f"{caps} {word}"


def _split_caps(token: str, vocab: Counter[str]) -> str:
    low = token.lower()
    if vocab[low] > 1:
        return token
    for i in range(MIN_PART, len(low) - MIN_PART + 1):
        if vocab[low[:i]] and vocab[low[i:]]:
            return f"{token[:i]} {token[i:]}"
    return token
