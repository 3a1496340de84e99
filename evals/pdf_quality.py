"""How right a PDF parse is, measured against pypdf's page text and, for PDFs built from
Markdown, against the Markdown they were built from (evals/bench_pdf.py).

- word coverage: the share of pypdf's words (a multiset per document) that the blocks hold,
  and the share of the blocks' words that pypdf has (low when words come out glued or torn);
- page agreement: the share of blocks whose words are mostly on the page the block names in
  pypdf's text of that page (page numbers right);
- glued words: words of the blocks that are not in pypdf's vocabulary of the document but split
  into two words that are (scripts/measure_glued_words.py's rule);
- structure against the source: the share of the source's headings found as heading blocks,
  of heading blocks that are source headings, of list items found as list blocks, and of table
  rows found as rows ("a | b") of table blocks. Text is compared on lowercase letters and digits.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from index.sentences import strip_list_marker
from ingest.blocks import Block

_WORD = re.compile(r"[A-Za-z]{2,}|\d+")
PAGE_WORDS_SHARE = 0.8  # a block is on its page when this share of its words are there


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def key(text: str) -> str:
    """Text compared on lowercase letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


@dataclass
class Tally:
    """Counts summed over documents; shares are computed at the end."""

    counts: Counter[str]

    @classmethod
    def empty(cls) -> Tally:
        return cls(Counter())

    def add(self, other: Counter[str]) -> None:
        self.counts.update(other)

    def share(self, part: str, whole: str) -> float | None:
        return round(self.counts[part] / self.counts[whole], 4) if self.counts[whole] else None


def against_pypdf(blocks: Sequence[Block], pages: Sequence[str]) -> Counter[str]:
    """Counts for word coverage, page agreement and glued words of one document's blocks
    against pypdf's text of each of its pages."""
    reference = Counter(w for page in pages for w in words(page))
    ours = Counter(w for b in blocks for w in words(b.text))
    vocabulary = set(reference)
    page_words = [set(words(page)) for page in pages]
    counts: Counter[str] = Counter(
        reference_words=sum(reference.values()),
        reference_found=sum((reference & ours).values()),
        our_words=sum(ours.values()),
        our_found=sum((ours & reference).values()),
        glued=sum(n for w, n in ours.items() if glued(w, vocabulary)),
        blocks=len(blocks),
        blocks_without_page=sum(b.page is None for b in blocks),
        pages=len(pages),
        pages_with_text_reference=sum(bool(p.strip()) for p in pages),
        pages_with_text=len({b.page for b in blocks if b.page is not None and b.text.strip()}),
    )
    for block in blocks:
        mine = words(block.text)
        if block.page is None or not mine or not 1 <= block.page <= len(pages):
            continue
        counts["blocks_checked"] += 1
        on_page = sum(w in page_words[block.page - 1] for w in mine)
        counts["blocks_on_their_page"] += on_page >= PAGE_WORDS_SHARE * len(mine)
    for block in blocks:
        counts[f"kind_{block.kind}"] += 1
    return counts


def glued(word: str, vocabulary: set[str]) -> bool:
    """Not a word of the document, but two of its words run together."""
    if word in vocabulary or len(word) < 5 or word.isdigit():
        return False
    return any(word[:i] in vocabulary and word[i:] in vocabulary for i in range(2, len(word) - 1))


def against_source(blocks: Sequence[Block], source: Sequence[Block]) -> Counter[str]:
    """Counts for heading, list item and table row recall (and heading precision) of a PDF's
    blocks against the blocks of the Markdown it was built from."""
    source_headings = {key(b.text) for b in source if b.kind == "heading"}
    our_headings = [key(b.text) for b in blocks if b.kind == "heading"]
    source_items = {_item_key(b.text) for b in source if b.kind == "list"}
    our_items = {_item_key(b.text) for b in blocks if b.kind == "list"}
    source_rows = {key(r) for b in source if b.kind == "table" for r in b.text.splitlines()}
    our_rows = {key(r) for b in blocks if b.kind == "table" for r in b.text.splitlines()}
    return Counter(
        source_headings=len(source_headings),
        source_headings_found=len(source_headings & set(our_headings)),
        our_headings=len(our_headings),
        our_headings_in_source=sum(h in source_headings for h in our_headings),
        source_items=len(source_items),
        source_items_found=len(source_items & our_items),
        source_rows=len(source_rows),
        source_rows_found=len(source_rows & our_rows),
    )


def _item_key(text: str) -> str:
    """A list item compared without its marker (bullets and numbers differ between formats)."""
    return key(strip_list_marker(strip_list_marker(text)))  # "- 1. " as well as "- "
