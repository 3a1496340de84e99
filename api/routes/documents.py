from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from api.deps import CallerDep, ServicesDep, SpokeDep
from api.schemas import ChunkOut, DocumentDetail, DocumentOut, ReviewIn
from api.uploads import exclusive
from assistant.review import OwnerQueue, queue_from_log, readable
from assistant.signoff import Reviewer, ReviewResult
from index.errors import NotFoundError
from index.records import DocumentRecord

router = APIRouter(tags=["documents"])

_MEDIA = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "html": "text/html; charset=utf-8",
    "markdown": "text/plain; charset=utf-8",  # shown as text; browsers download text/markdown
    "text": "text/plain; charset=utf-8",
}
# Shown in the browser, so a citation's `#page=N` opens the PDF at its page. HTML is not: on
# this origin a document's script could read the chat page's API key, so it is a download.
_INLINE = {"pdf", "markdown", "text"}


def _out(record: DocumentRecord, services: ServicesDep) -> DocumentOut:
    meta = record.meta
    return DocumentOut(
        doc_id=meta.id,
        title=meta.title,
        doc_type=meta.doc_type.value,
        department=meta.department,
        owner=meta.owner,
        status=meta.status.value,
        access=meta.access,
        tags=meta.tags,
        path=record.path,
        format=record.format,
        review_date=meta.review_date,
        stale=meta.is_stale(services.today()),
        chunks=record.chunk_count,
        ingested_at=record.ingested_at,
        supersedes=meta.supersedes,
        project=meta.project,
        vendor=meta.vendor,
        outcome=meta.outcome,
        year=meta.year,
    )


def _readable_record(doc_id: str, services: ServicesDep, caller: CallerDep) -> DocumentRecord:
    """The document, or NotFound: a document the caller may not read does not exist for them."""
    record = services.store.document(doc_id)
    if record is None or not readable([record], caller.principal):
        raise NotFoundError(f"no document '{doc_id}': check the id with GET /v1/documents")
    return record


@router.get("/v1/documents", response_model=list[DocumentOut])
def list_documents(services: ServicesDep, caller: CallerDep) -> list[DocumentOut]:
    """Every document the caller may read, with review status."""
    records = readable(services.store.documents(), caller.principal)
    return [_out(r, services) for r in sorted(records, key=lambda r: r.doc_id)]


@router.get("/v1/documents/stale", response_model=list[OwnerQueue])
def stale_documents(services: ServicesDep, caller: SpokeDep) -> list[OwnerQueue]:
    """The review queue (spoke or admin role): documents past their review date, and
    documents without an owner, grouped by owner, most urgent first (`urgency`: days overdue
    times one plus recent citations, plus a boost per "outdated" thumbs down)."""
    records = readable(services.store.documents(), caller.principal)
    return queue_from_log(records, services.today(), services.query_log)


@router.post("/v1/documents/{doc_id}/review", response_model=ReviewResult)
async def review_document(
    doc_id: str, services: ServicesDep, caller: CallerDep, body: ReviewIn | None = None
) -> ReviewResult:
    """Mark a document reviewed (its owner, i.e. a key named like its `owner`, or an admin):
    due again after `review_date` (a future date; default today + its review interval). At
    once, answers stop warning about it, search stops flagging it, and it leaves the review
    queue; re-ingesting the unchanged file keeps the review. Recorded in the audit log."""
    request = body or ReviewIn()
    reviewer = Reviewer(who=caller.key_id, name=caller.name, principal=caller.principal)

    def run() -> ReviewResult:
        with exclusive(services.ingest_lock):  # a sync must not rewrite it meanwhile
            return services.signoff.mark_reviewed(
                doc_id, reviewer, until=request.review_date, note=request.note
            )

    return await run_in_threadpool(run)


@router.get("/v1/documents/{doc_id}", response_model=DocumentDetail)
def get_document(doc_id: str, services: ServicesDep, caller: CallerDep) -> DocumentDetail:
    """A document's metadata, review status and chunks."""
    record = _readable_record(doc_id, services, caller)
    chunks = [
        ChunkOut(chunk_id=cid, section=str(md.get("section", "")), page=md.get("page"), text=text)
        for cid, text, md in services.store.document_chunks(doc_id)
    ]
    return DocumentDetail(**_out(record, services).model_dump(), chunk_list=chunks)


@router.get("/v1/documents/{doc_id}/source", response_class=FileResponse)
def document_source(doc_id: str, services: ServicesDep, caller: CallerDep) -> FileResponse:
    """The original file, so that a citation can be opened (append `#page=N` for a PDF)."""
    record = _readable_record(doc_id, services, caller)
    path = record.source
    if not path.is_file():
        raise NotFoundError(f"the source file of '{doc_id}' is no longer at {record.path}")
    return FileResponse(
        path,
        media_type=_MEDIA.get(record.format),
        filename=path.name,
        content_disposition_type="inline" if record.format in _INLINE else "attachment",
        headers={"X-Content-Type-Options": "nosniff"},  # text stays text
    )
