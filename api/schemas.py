"""Request and response bodies of the HTTP API (the OpenAPI schema is built from these)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from assistant.projects import ProjectOptions, ProjectQuery
from assistant.prompt import Turn
from assistant.querylog import FeedbackReason, Rating
from index.facets import FACET_NAMES, FacetCount, FacetName
from index.filters import SearchFilters
from index.hits import Hit

# Bounds on filter values: generous for any real filter, and they keep a request from building a
# where clause Chroma cannot take (10,000 tags crashed the server process: tests/security).
FILTER_VALUES = 50  # values in one "any of" list
FILTER_CHARS = 200  # characters in one value
FilterValue = Annotated[str, Field(max_length=FILTER_CHARS)]
FilterValues = Annotated[list[FilterValue], Field(max_length=FILTER_VALUES)]


class SearchFiltersIn(BaseModel):
    """Which documents to draw from; a list means "any of" (at most 50 values of at most 200
    characters each)."""

    department: FilterValue | FilterValues | None = Field(None, examples=["finance"])
    doc_type: FilterValue | FilterValues | None = Field(
        None, examples=[["playbook", "lessons_learned"]]
    )
    status: FilterValue | FilterValues | None = Field(
        None, description="Default: all but superseded/retired."
    )
    tags: FilterValues | None = None
    owner: FilterValue | None = None
    vendor: FilterValue | None = None
    year: int | None = Field(None, ge=1900, le=2200)
    reviewed_from: dt.date | None = Field(None, description="Last reviewed on or after.")
    reviewed_to: dt.date | None = Field(None, description="Last reviewed on or before.")
    stale: bool | None = Field(
        None, description="true: only past review date; false: only current."
    )
    include_superseded: bool = False

    def to_filters(self) -> SearchFilters:
        return SearchFilters.build(**self.model_dump())


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000, examples=["invoice matching vendor"])
    k: int = Field(5, ge=1, le=100)
    filters: SearchFiltersIn = Field(default_factory=SearchFiltersIn)
    neighbors: int = Field(0, ge=0, le=3, description="Attach this many chunks either side.")
    facets: list[FacetName] = Field(
        default_factory=lambda: list(FACET_NAMES),
        description="Facets to count (default: all five); [] for none.",
    )


class SearchResponse(BaseModel):
    hits: list[Hit]
    facets: dict[FacetName, list[FacetCount]] = Field(
        default_factory=dict,
        description=(
            "For each facet asked for, the distinct documents (not chunks) per value among "
            "the documents relevant to the query: those of the candidates both retrievers "
            "ranked (`KB_RETRIEVAL_CANDIDATES` chunks each), within the caller's access and "
            "the request's filters, so a document the caller may not read is never counted. "
            "Values by count, then value; a document without a value (no vendor, no year) is "
            "left out of that facet. Each value works as the filter of the same name."
        ),
        examples=[{"department": [{"value": "finance", "count": 3}]}],
    )


class TurnIn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=8000)

    def to_turn(self) -> Turn:
        return Turn(self.role, self.content)


class AskRequest(BaseModel):
    question: str = Field(
        min_length=1, max_length=2000, examples=["How do we deploy document processing?"]
    )
    history: list[TurnIn] = Field(
        default_factory=list, max_length=20, description="Earlier turns, oldest first."
    )
    filters: SearchFiltersIn = Field(default_factory=SearchFiltersIn)


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    doc_type: str
    department: str
    owner: str
    status: str
    access: list[str]
    tags: list[str]
    path: str
    format: str
    review_date: dt.date | None
    stale: bool
    chunks: int
    ingested_at: dt.datetime
    supersedes: list[str]
    project: str | None = None
    vendor: str | None = None
    outcome: str | None = None
    year: int | None = None


class ChunkOut(BaseModel):
    chunk_id: str
    section: str
    page: int | None
    text: str


class DocumentDetail(DocumentOut):
    chunk_list: list[ChunkOut]


class FeedbackIn(BaseModel):
    answer_id: str = Field(
        min_length=1, max_length=64, description="The `answer_id` that /v1/ask returned."
    )
    rating: Rating = Field(examples=["down"])
    reason: FeedbackReason | None = Field(
        None, description="Why, for a thumbs down.", examples=["outdated"]
    )
    comment: str | None = Field(None, max_length=2000)


class FeedbackOut(BaseModel):
    answer_id: str
    rating: Rating
    reason: FeedbackReason | None


class ReviewIn(BaseModel):
    """Marking a document reviewed: both fields optional (`{}` or no body at all)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is named, not ignored

    review_date: dt.date | None = Field(
        None,
        description="Due again after this date; must be in the future. Default: today + the "
        "document's review interval (its `review_interval_days`, else its type's usual one). "
        "A later review date in the file's own metadata stays.",
        examples=["2027-06-30"],
    )
    note: str | None = Field(
        None, max_length=2000, description="What was checked or changed, for the audit log."
    )


class SimilarProjectsQuery(BaseModel):
    """`GET /v1/projects/similar`: a project described in words (`q`) or a document of the
    base (`doc_id`), exactly one of them."""

    model_config = ConfigDict(extra="forbid")  # a misspelt parameter is named, not ignored

    q: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        description="The project, described in words.",
        examples=["a chatbot that answers customers' order questions"],
    )
    doc_id: str | None = Field(
        None,
        max_length=200,
        description="A document of the base: projects similar to it, itself left out.",
        examples=["expense-receipt-ocr-lessons"],
    )
    limit: int = Field(
        ProjectOptions.default_limit,
        ge=1,
        le=ProjectOptions.max_limit,
        description="At most this many documents.",
    )
    department: list[str] = Field(
        default_factory=list, description="Only documents of these departments."
    )
    exclude_department: list[str] = Field(
        default_factory=list, description="No documents of these departments."
    )
    include_own_department: bool = Field(
        False,
        description="With `doc_id`: also documents of its own department (left out by default; "
        "naming it in `department` includes it too).",
    )

    def to_query(self) -> ProjectQuery:
        return ProjectQuery(
            text=self.q,
            doc_id=self.doc_id,
            limit=self.limit,
            departments=tuple(self.department),
            exclude_departments=tuple(self.exclude_department),
            include_own_department=self.include_own_department,
        )


class SimilarProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    doc_id: str
    title: str
    department: str
    doc_type: str
    project: str | None
    vendor: str | None
    outcome: str | None
    year: int | None
    lesson: str | None = Field(
        description="Its main lesson: of the sentences of its lesson and advice sections (else "
        "its summary or decision sections, else its best chunk), the one closest to the "
        "description."
    )
    similarity: float | None = Field(
        description="Cosine similarity of its best chunk to the description (the ranking); "
        "null when only keyword search found it (ranked after the others)."
    )
    score: float = Field(description="Fused retrieval score of its best chunk (0..1).")
    stale: bool = Field(description="Past its review date.")
    review_date: str | None
    path: str


class SourceDocumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    doc_id: str
    title: str
    department: str


class SimilarProjectsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    basis: Literal["document", "description"] = Field(
        description="What the similarity is to: the given document, or the description."
    )
    source: SourceDocumentOut | None = Field(description="The given document, if any.")
    doc_types: list[str] = Field(description="The document types searched.")
    departments: list[str] = Field(description="Only these departments, when asked for.")
    excluded_departments: list[str] = Field(
        description="Departments left out: those asked for, and the given document's own."
    )
    note: str = Field(description="What was left out, in words.")
    projects: list[SimilarProjectOut] = Field(
        description="One entry per document, most similar first; only documents the caller "
        "may read are ever candidates."
    )


class EvalRunIn(BaseModel):
    """An evaluation run of a known dataset through the assistant as the service assembles it
    (evals/README.md, "Evaluation suites"), changed for this run by `generator` and `set`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    dataset: str = Field(
        min_length=1,
        max_length=64,
        description="A known dataset by name (`kb eval datasets`); files are not taken here.",
        examples=["golden"],
    )
    generator: str | None = Field(
        None,
        max_length=32,
        description="auto, local, openai or extractive (checked as KB_GENERATOR is); default: "
        "the service's.",
    )
    limit: int | None = Field(
        None, ge=1, description="At most this many questions, spread over the question types."
    )
    overrides: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        alias="set",
        description="Settings changed for this run only, as `kb eval run --set KEY=VALUE`: a "
        "settings field or its variable, validated the same way.",
        examples=[{"answer_sources": 8}],
    )


class EvalRunProgress(BaseModel):
    done: int = Field(description="Questions answered so far.")
    total: int


class EvalRunOut(BaseModel):
    id: str = Field(description="The run folder's name under KB_DATA_DIR/evals.")
    status: str = Field(description="running, complete, interrupted or failed.")
    dataset: str
    progress: EvalRunProgress
    started_at: str
    error: str | None = None


class EvalRunDetail(EvalRunOut):
    summary: dict[str, object] | None = Field(
        None,
        description="The run's summary.json (metrics overall, per type and per department) "
        "once it is no longer running.",
    )


class EvalRunList(BaseModel):
    runs: list[EvalRunOut] = Field(description="Every run folder, the latest started first.")
