"""Our documents recognised in another system's answers (evals/systems.py): by id, title, file
name or path in its sources, by id or title in its text, and that system's reply put in our
`Answer` shape, so the suites' metrics read it as they read ours."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from assistant.service import Answer, Citation
from index.records import DocumentRecord


class Catalogue:
    """The store's documents, recognised by id, title, file name or path."""

    def __init__(self, documents: Sequence[DocumentRecord], today: dt.date) -> None:
        self._today = today
        self._by_name: dict[str, DocumentRecord] = {}
        for d in documents:
            for name in (d.path, PurePosixPath(d.path).name, d.meta.title, d.doc_id):
                self._by_name[name.strip().lower()] = d
        # Named in a text by id or title, longest first so a title is not taken for a shorter one.
        names = sorted(
            ((n, d) for d in documents for n in (d.doc_id, d.meta.title)), key=lambda p: -len(p[0])
        )
        self._patterns = [
            (re.compile(rf"(?<![\w-]){re.escape(n)}(?![\w-])", re.I), d) for n, d in names
        ]

    def find(self, name: str) -> DocumentRecord | None:
        cleaned = name.strip().lower()
        return self._by_name.get(cleaned) or self._by_name.get(PurePosixPath(cleaned).name)

    def named_in(self, text: str) -> list[DocumentRecord]:
        """Documents the text names, in order of their first mention."""
        taken: list[tuple[int, int]] = []
        first: dict[str, tuple[int, DocumentRecord]] = {}
        for pattern, record in self._patterns:
            for m in pattern.finditer(text):
                if any(a < m.end() and m.start() < b for a, b in taken):
                    continue
                taken.append(m.span())
                if m.start() < first.get(record.doc_id, (len(text), record))[0]:
                    first[record.doc_id] = (m.start(), record)
        return [record for _, record in sorted(first.values(), key=lambda p: p[0])]

    def citation(
        self, n: int, record: DocumentRecord, page: int | None = None, section: str = ""
    ) -> Citation:
        """A citation of a recognised document; staleness from our registry, support unknown."""
        review = record.meta.review_date
        link = f"/v1/documents/{record.doc_id}/source" + (f"#page={page}" if page else "")
        return Citation(
            n=n,
            doc_id=record.doc_id,
            title=record.meta.title,
            path=record.path,
            page=page,
            section=section,
            stale=record.meta.is_stale(self._today),
            support=0.0,
            owner=record.meta.owner,
            review_date=review.isoformat() if review else None,
            link=link,
            pages=[page] if page else [],
        )


def foreign_answer(
    question: str,
    text: str,
    refused: bool,
    citations: list[Citation],
    warnings: list[str],
    catalogue: Catalogue,
) -> Answer:
    """Another system's reply in our shape; a refusal that names documents names them as
    `nearby` (so a forbidden one still counts as a leak)."""
    nearby = (
        [{"doc_id": d.doc_id, "title": d.meta.title} for d in catalogue.named_in(text)]
        if refused
        else []
    )
    return Answer(
        question,
        question,
        text,
        refused,
        [] if refused else citations,
        warnings,
        nearby=nearby,
        generator="",
    )
