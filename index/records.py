"""What the store holds: document metadata, registry records and chunks, and how each maps to
Chroma's flat metadata (scalars and non-empty lists only; dates kept as ISO text plus a day
number so that range filters work)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class DocType(StrEnum):
    PLAYBOOK = "playbook"
    VENDOR_EVALUATION = "vendor_evaluation"
    LESSONS_LEARNED = "lessons_learned"
    FAQ = "faq"
    TEMPLATE = "template"
    SHOWCASE = "showcase"
    POLICY = "policy"
    REFERENCE = "reference"  # neutral: what a document of unknown kind is ingested as


class Status(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    SUPERSEDED = "superseded"
    RETIRED = "retired"


DEFAULT_REVIEW_INTERVAL_DAYS: dict[DocType, int] = {
    DocType.POLICY: 365,
    DocType.PLAYBOOK: 180,
    DocType.VENDOR_EVALUATION: 180,
    DocType.FAQ: 180,
    DocType.TEMPLATE: 365,
    DocType.LESSONS_LEARNED: 730,
    DocType.SHOWCASE: 730,
    DocType.REFERENCE: 365,
}

# What a document whose metadata and folder defaults say nothing about is ingested with, when
# ingestion is not strict (ingest/metadata.py): neutral values that the review queue flags.
NEUTRAL_DOC_TYPE = DocType.REFERENCE
UNASSIGNED_DEPARTMENT = "unassigned"
UNKNOWN_OWNER = "unknown"

EVERYONE = "all"
NEVER_DUE = dt.date.max.toordinal()


def _as_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return value


class DocumentMeta(BaseModel):
    """Governance metadata of one document (docs/metadata.md is the user-facing description)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Stable document id, unique across the base.")
    title: str = Field(min_length=1)
    doc_type: DocType
    department: str
    owner: str = Field(min_length=1)
    last_reviewed: dt.date | None = None
    review_interval_days: int | None = Field(default=None, ge=1, le=3650)
    review_by: dt.date | None = None
    status: Status = Status.APPROVED
    supersedes: list[str] = Field(default_factory=list)
    access: list[str] = Field(default_factory=lambda: [EVERYONE])
    tags: list[str] = Field(default_factory=list)
    project: str | None = None
    vendor: str | None = None
    outcome: str | None = None
    year: int | None = Field(default=None, ge=1990, le=2100)

    @field_validator("id", "department")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError(
                f"'{value}' is not a slug: use lowercase letters, digits, '-' or '_' "
                "(for example 'customer_service')"
            )
        return value

    @field_validator("supersedes", "access", "tags", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("access")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        groups = sorted({g.strip().lower() for g in value if g.strip()})
        if not groups:
            raise ValueError("name at least one group, or 'all' for everyone")
        return groups

    @field_validator("tags", "supersedes")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        return sorted({str(v).strip() for v in value if str(v).strip()})

    @field_validator("title", "owner")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @property
    def review_date(self) -> dt.date | None:
        """The date after which the document is stale, or None if it was never reviewed."""
        if self.review_by is not None:
            return self.review_by
        if self.last_reviewed is None:
            return None
        interval = self.review_interval_days or DEFAULT_REVIEW_INTERVAL_DAYS[self.doc_type]
        return self.last_reviewed + dt.timedelta(days=interval)

    def is_stale(self, today: dt.date) -> bool:
        review = self.review_date
        return review is not None and today > review

    def readable_by(self, groups: frozenset[str] | set[str]) -> bool:
        return EVERYONE in self.access or bool(groups.intersection(self.access))


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Chroma metadata takes no None and no empty list: leave such keys out."""
    if value is None or value == []:
        return
    if isinstance(value, dt.date):
        out[key] = value.isoformat()
        out[f"{key}_day"] = value.toordinal()
    elif isinstance(value, StrEnum):
        out[key] = value.value
    else:
        out[key] = value


def meta_to_chroma(meta: DocumentMeta) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in DocumentMeta.model_fields:
        if name != "id":
            _put(out, name, getattr(meta, name))
    out["doc_id"] = meta.id
    _put(out, "review_date", meta.review_date)
    if meta.review_date is None:  # never reviewed: never stale, and range filters still work
        out["review_date_day"] = NEVER_DUE
    return out


# Metadata fields kept as a date plus a day number (`_put`).
_DATE_FIELDS = tuple(
    name for name, f in DocumentMeta.model_fields.items() if dt.date in get_args(f.annotation)
)


def _clearing(out: dict[str, Any]) -> dict[str, Any]:
    """`out`, naming as None every metadata key this document lacks. Chroma merges a write's
    metadata into the record's (a key left out keeps its old value; None removes it), so a
    registry record rewritten without this would keep a field its file no longer has, or the
    dates of a review the file's new version does not carry (index/reviews.py)."""
    for name in DocumentMeta.model_fields:
        if name != "id":
            out.setdefault(name, None)
    for name in _DATE_FIELDS:
        out.setdefault(f"{name}_day", None)
    return out


def meta_from_chroma(doc_id: str, md: dict[str, Any]) -> DocumentMeta:
    values = {name: md[name] for name in DocumentMeta.model_fields if name in md}
    values["id"] = doc_id
    return DocumentMeta.model_validate(values)


@dataclass(frozen=True)
class DocumentRecord:
    """One registry entry: a document's metadata and what the store holds of it."""

    meta: DocumentMeta
    path: str  # relative to root, posix
    root: str  # the folder it was ingested from (absolute)
    format: str
    content_hash: str
    chunk_count: int
    ingested_at: dt.datetime
    # "writing" while its chunks are being replaced (see ingest/sync.py); "resync" when a
    # store check found chunks missing (index/integrity.py). Any state but "ok" is redone by the
    # next sync.
    state: str = "ok"

    @property
    def doc_id(self) -> str:
        return self.meta.id

    @property
    def source(self) -> Path:
        """The original file."""
        return Path(self.root) / self.path

    def to_chroma(self) -> dict[str, Any]:
        """The registry's metadata of this record: every key it had before and lacks now is
        None, so that writing it removes them."""
        out = meta_to_chroma(self.meta)
        out.update(
            path=self.path,
            root=self.root,
            format=self.format,
            content_hash=self.content_hash,
            chunk_count=self.chunk_count,
            ingested_at=self.ingested_at.isoformat(),
            state=self.state,
        )
        return _clearing(out)

    @classmethod
    def from_chroma(cls, doc_id: str, md: dict[str, Any]) -> DocumentRecord:
        return cls(
            meta=meta_from_chroma(doc_id, md),
            path=str(md["path"]),
            root=str(md["root"]),
            format=str(md["format"]),
            content_hash=str(md["content_hash"]),
            chunk_count=int(md["chunk_count"]),
            ingested_at=dt.datetime.fromisoformat(str(md["ingested_at"])),
            state=str(md.get("state", "ok")),
        )


@dataclass(frozen=True)
class Chunk:
    """A piece of a document sized for the embedding window, with where it came from."""

    text: str
    section: str = ""
    page: int | None = None
    page_end: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def version_digest(content_hash: str) -> str:
    """The part of a document version's content hash its chunk ids carry."""
    return content_hash[:12]


def chunk_id(doc_id: str, content_hash: str, index: int) -> str:
    """Deterministic: the same document content always yields the same chunk ids, so a
    repeated write is an idempotent upsert, and chunks of another version are recognisable."""
    return f"{doc_id}:{version_digest(content_hash)}:{index:04d}"


def chunk_to_chroma(record: DocumentRecord, chunk: Chunk, index: int) -> dict[str, Any]:
    out = meta_to_chroma(record.meta)
    out.update(path=record.path, format=record.format, content_hash=record.content_hash)
    out["chunk_index"] = index
    _put(out, "section", chunk.section or None)
    _put(out, "page", chunk.page)
    _put(out, "page_end", chunk.page_end)
    return out
