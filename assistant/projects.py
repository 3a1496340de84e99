"""Similar projects: the lessons learned, showcases and vendor evaluations of other departments
closest to a project, described in words or given as a document of the base (`kb projects`,
`GET /v1/projects/similar`).

Candidates come from the retriever every search uses (`HybridRetriever.retrieve`), under one
`where` clause built from the project types, the department filters and the principal's
access (index/filters.py): a document the principal may not read is never a candidate, so it
is never listed, ranked or counted. One entry per document: a document ranks by its best
chunk, i.e. the highest cosine similarity of any of its chunks to the description; a document
only the keyword index found (it shares a rare name, but no chunk is among the nearest) comes
after those, by its fused score. Each entry carries its main lesson: of the sentences of its
lesson and advice sections (else of its summary or decision sections, else of its best
chunk), the one closest to the description, cut by the composer's `quotable()`
(assistant/extractive.py) with the one sentence splitter (index/sentences.py).

Given a document, the description is its title, project, vendor and opening words (the opening
of these documents is their summary or what was tried); the document itself is left out, and
so is its own department unless asked for, which the result's `note` says.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from assistant.extractive import quotable
from assistant.review import readable
from assistant.shapes import PROJECT_TYPES
from index.embedding import Embedder
from index.errors import InvalidRequestError, NotFoundError
from index.filters import Principal, SearchFilters
from index.hits import Hit
from index.hybrid import HybridRetriever
from index.records import DocumentRecord
from index.store import ChromaStore

# Sections whose sentences state a lesson, best first: lessons and advice, then summaries and
# decisions (matched on any heading of a chunk's path but the document's title).
_LESSON_SECTIONS = (
    re.compile(r"\b(?:lessons?|learn\w*|takeaways?|differently|advice|recommend\w*)\b", re.I),
    re.compile(
        r"\b(?:summary|in short|one-minute|conclusions?|decision|findings|verdict|outcome)\b",
        re.I,
    ),
)


@dataclass(frozen=True)
class ProjectOptions:
    default_limit: int = 5
    max_limit: int = 20
    # Opening words of a given document that describe it: MiniLM reads 256 word pieces (about
    # 180 English words) and drops the rest, so 120 words leave room for the title, project
    # and vendor. A choice within the model's window, not a measurement.
    description_words: int = 120


@dataclass(frozen=True)
class ProjectQuery:
    """What to find projects similar to: a description (`text`) or a document (`doc_id`),
    exactly one of them; `departments` keeps only those, `exclude_departments` leaves those
    out; given a document, its own department is left out unless `include_own_department` (or
    `departments` names it)."""

    text: str | None = None
    doc_id: str | None = None
    limit: int | None = None
    departments: tuple[str, ...] = ()
    exclude_departments: tuple[str, ...] = ()
    include_own_department: bool = False

    def validate(self, options: ProjectOptions) -> None:
        if (self.text is None) == (self.doc_id is None):
            raise InvalidRequestError(
                "q", "give either q (a description of the project) or doc_id (a document)"
            )
        if self.text is not None and not self.text.strip():
            raise InvalidRequestError("q", "is empty: describe the project")
        limit = self.limit or options.default_limit
        if not 1 <= limit <= options.max_limit:
            raise InvalidRequestError("limit", f"{limit} is out of range: 1 to {options.max_limit}")


@dataclass(frozen=True)
class SimilarProject:
    doc_id: str
    title: str
    department: str
    doc_type: str
    project: str | None
    vendor: str | None
    outcome: str | None
    year: int | None
    lesson: str | None  # its main lesson: one sentence, closest to the description
    similarity: float | None  # best chunk's cosine similarity; None: found by keywords only
    score: float  # best chunk's fused retrieval score (0..1)
    stale: bool
    review_date: str | None
    path: str


@dataclass(frozen=True)
class SourceDocument:
    """The document the projects are similar to."""

    doc_id: str
    title: str
    department: str


@dataclass(frozen=True)
class ProjectMatches:
    basis: Literal["document", "description"]
    source: SourceDocument | None
    doc_types: list[str]
    departments: list[str]  # only these, when asked for
    excluded_departments: list[str]
    note: str  # what was left out, in words
    projects: list[SimilarProject] = field(default_factory=list)


class ProjectFinder:
    def __init__(
        self,
        retriever: HybridRetriever,
        store: ChromaStore,
        embedder: Embedder,
        today: Callable[[], dt.date],
        options: ProjectOptions | None = None,
    ) -> None:
        self._retriever = retriever
        self._store = store
        self._embedder = embedder
        self._today = today
        self.options = options or ProjectOptions()

    def similar(self, query: ProjectQuery, principal: Principal) -> ProjectMatches:
        """The project documents closest to the query that `principal` may read, best first."""
        query.validate(self.options)
        source = self._source(query.doc_id, principal) if query.doc_id else None
        description = self._describe(source) if source else str(query.text)
        excluded = _excluded(query, source)
        filters = SearchFilters.build(
            doc_type=sorted(PROJECT_TYPES),
            department=query.departments,
            exclude_department=excluded,
        )
        hits = self._retriever.retrieve(
            description,
            self._retriever.options.max_k,
            today=self._today(),
            filters=filters,
            principal=principal,
        )
        skip = {source.doc_id} if source else set()
        best = best_per_document(hits, skip)[: query.limit or self.options.default_limit]
        lessons = self._lessons(description, best)
        return ProjectMatches(
            basis="document" if source else "description",
            source=_source_of(source) if source else None,
            doc_types=sorted(PROJECT_TYPES),
            departments=list(query.departments),
            excluded_departments=excluded,
            note=_note(source, excluded),
            projects=[_project(hit, lessons.get(hit.doc_id)) for hit in best],
        )

    def _source(self, doc_id: str, principal: Principal) -> DocumentRecord:
        """The given document, or NotFound: one the principal may not read does not exist."""
        record = self._store.document(doc_id)
        if record is None or not readable([record], principal):
            raise NotFoundError(f"no document '{doc_id}': check the id with GET /v1/documents")
        return record

    def _describe(self, record: DocumentRecord) -> str:
        chunks = [text for _, text, _ in self._store.document_chunks(record.doc_id)]
        return describe(record, chunks, self.options.description_words)

    def _lessons(self, description: str, best: Sequence[Hit]) -> dict[str, str]:
        """Each document's sentence closest to the description, among its lesson sentences."""
        candidates = [
            (hit.doc_id, sentence)
            for hit in best
            for sentence in lesson_sentences(hit, self._store.document_chunks(hit.doc_id))
        ]
        if not candidates:
            return {}
        vectors = self._embedder.embed([description, *(s for _, s in candidates)])
        similarity = vectors[1:] @ vectors[0]
        lessons: dict[str, tuple[float, str]] = {}
        for (doc_id, sentence), value in zip(candidates, similarity, strict=True):
            if doc_id not in lessons or float(value) > lessons[doc_id][0]:
                lessons[doc_id] = (float(value), sentence)
        return {doc_id: sentence for doc_id, (_, sentence) in lessons.items()}


def describe(record: DocumentRecord, chunks: Sequence[str], words: int) -> str:
    """A document as a project description: title, project, vendor, then its opening words."""
    meta = record.meta
    head = ". ".join(part for part in (meta.title, meta.project, meta.vendor) if part)
    opening = " ".join(" ".join(chunks).split()[:words])
    return f"{head}. {opening}".strip()


def best_per_document(hits: Sequence[Hit], skip: set[str]) -> list[Hit]:
    """Each document's best chunk (highest cosine similarity; a chunk only the keyword index
    found counts by its fused score, after every chunk the dense path found), best first."""
    best: dict[str, Hit] = {}
    for hit in hits:
        if hit.doc_id in skip:
            continue
        kept = best.get(hit.doc_id)
        if kept is None or _rank(hit) < _rank(kept):
            best[hit.doc_id] = hit
    return sorted(best.values(), key=lambda hit: (*_rank(hit), hit.doc_id))


def _rank(hit: Hit) -> tuple[bool, float, float]:
    return (hit.dense_score is None, -(hit.dense_score or 0.0), -hit.score)


def lesson_sentences(hit: Hit, chunks: Sequence[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """The quotable sentences of the document's lesson and advice sections; without such
    sections, of its summary and decision sections; without those, of its best chunk. Only
    whole sentences: a heading, or a piece of a line a PDF wrapped, is none."""
    tiers: list[list[str]] = [[] for _ in _LESSON_SECTIONS]
    for _, text, md in chunks:
        headings = [h.strip() for h in str(md.get("section", "")).split(">")]
        headings = [h for h in headings if h and not hit.title.startswith(h)]
        if not headings or headings[0].lower().startswith("appendix"):
            continue
        tier = next((i for i, p in enumerate(_LESSON_SECTIONS) if _names(p, headings)), None)
        if tier is not None:
            tiers[tier] += [s for s in quotable(text) if s.rstrip(".") not in headings]
    for found in (*tiers, quotable(hit.text)):
        whole = [s.removeprefix("- ") for s in found]
        whole = [s for s in whole if s[:1].isupper() or s[:1].isdigit()]
        if whole:
            return list(dict.fromkeys(whole))
    return []


def _names(pattern: re.Pattern[str], headings: list[str]) -> bool:
    return any(pattern.search(h) for h in headings)


def _excluded(query: ProjectQuery, source: DocumentRecord | None) -> list[str]:
    excluded = list(dict.fromkeys(query.exclude_departments))
    own = source.meta.department if source else None
    keep_own = query.include_own_department or own in query.departments
    if own and not keep_own and own not in excluded:
        excluded.append(own)
    return excluded


def _note(source: DocumentRecord | None, excluded: list[str]) -> str:
    parts = []
    if source is not None:
        parts.append(f"similar to '{source.meta.title}' ({source.doc_id}), which is left out")
        own = source.meta.department
        if own in excluded:
            parts.append(
                f"its own department ({own}) is left out: ask with include_own_department to see it"
            )
        else:
            parts.append(f"its own department ({own}) is included")
    others = [d for d in excluded if source is None or d != source.meta.department]
    if others:
        parts.append(f"departments left out as asked: {', '.join(others)}")
    return "; ".join(parts) or "closest to the description, from every department"


def _source_of(record: DocumentRecord) -> SourceDocument:
    return SourceDocument(record.doc_id, record.meta.title, record.meta.department)


def _project(hit: Hit, lesson: str | None) -> SimilarProject:
    return SimilarProject(
        doc_id=hit.doc_id,
        title=hit.title,
        department=hit.department,
        doc_type=hit.doc_type,
        project=hit.project,
        vendor=hit.vendor,
        outcome=hit.outcome,
        year=hit.year,
        lesson=lesson,
        similarity=hit.dense_score,
        score=hit.score,
        stale=hit.is_stale,
        review_date=hit.review_date,
        path=hit.path,
    )
