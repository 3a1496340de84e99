"""The numbered sources an answer is grounded on: one per document, holding the retrieved
chunks of that document in reading order, as the prompt, the checker and the response see
them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from index.hits import Hit


@dataclass(frozen=True)
class Source:
    n: int  # 1-based number the answer cites as [n]
    hits: tuple[Hit, ...]  # this document's retrieved chunks, in document order

    @property
    def best(self) -> Hit:
        return max(self.hits, key=lambda h: h.score)

    @property
    def doc_id(self) -> str:
        return self.hits[0].doc_id

    @property
    def stale(self) -> bool:
        return self.hits[0].is_stale

    @property
    def review_date(self) -> dt.date | None:
        review = self.hits[0].review_date
        return dt.date.fromisoformat(review) if review else None

    def passages(self) -> list[tuple[Hit, str]]:
        """(chunk, text the generator reads): the chunk with its neighbours if retrieved so."""
        return [(hit, hit.context or hit.text) for hit in self.hits]

    @property
    def text(self) -> str:
        return "\n...\n".join(text for _, text in self.passages())

    def heading(self) -> str:
        hit = self.hits[0]
        parts = [hit.title]
        sections = list(dict.fromkeys(h.section for h in self.hits if h.section))
        if sections:
            parts.append("section: " + " / ".join(sections))
        pages = sorted({h.page for h in self.hits if h.page})
        if pages:
            parts.append("page " + ", ".join(str(p) for p in pages))
        if self.stale:
            parts.append(f"PAST REVIEW DATE ({self.review_date})")
        return "; ".join(parts)


def number_sources(hits: list[Hit], limit: int | None = None) -> list[Source]:
    """Group hits by document, numbered by the rank of each document's best hit."""
    groups: dict[str, list[Hit]] = {}
    for hit in hits:
        groups.setdefault(hit.doc_id, []).append(hit)
    ordered = list(groups.values())[:limit]
    return [
        Source(n=i, hits=tuple(sorted(group, key=lambda h: h.chunk_index)))
        for i, group in enumerate(ordered, start=1)
    ]
