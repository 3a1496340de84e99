"""Admin ingestion over HTTP: upload documents, re-sync the corpus folder.

Both run under the ingest lock (one ingest at a time; a second gets 409 at once) in a worker
thread, off the event loop. What an upload checks, and how it leaves the folder and the store
unchanged when it fails, is in api/uploads.py.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import AdminDep, ServicesDep
from api.uploads import MAX_FILES, IncomingFile, corpus_root, exclusive
from assistant.audit import AuditAction
from ingest.parsing import FORMATS
from ingest.sync import IngestReport

log = logging.getLogger("kb.api")
router = APIRouter(tags=["admin"])


class ReportEntry(BaseModel):
    doc_id: str
    path: str
    chunks: int | None = Field(None, description="Chunks written (added and updated only).")


class ReportFailure(BaseModel):
    path: str
    reason: str


class IngestWarningOut(BaseModel):
    path: str
    doc_id: str
    defaulted: dict[str, str] = Field(description="Required fields given neutral values.")
    reason: str


class IngestReportOut(BaseModel):
    """What a sync did: the fields of `kb ingest --json`."""

    added: list[ReportEntry]
    updated: list[ReportEntry]
    unchanged: list[ReportEntry]
    removed: list[ReportEntry]
    failed: list[ReportFailure]
    unreachable: list[str] | None = Field(
        None,
        description="Only when some chunks just written cannot be found by dense search "
        "(chroma-core/chroma#7758): their ids; run `kb store check --repair`.",
    )
    warnings: list[IngestWarningOut] | None = Field(
        None,
        description="Only when some documents were ingested with neutral values for "
        "doc_type, department or owner (nothing declared them): declare them.",
    )


class UploadOut(IngestReportOut):
    doc_ids: list[str] = Field(description="Ids of the uploaded documents, in upload order.")


_DOC_FILES = (
    f"Up to {MAX_FILES} files ({', '.join(sorted(FORMATS))}), each at most KB_UPLOAD_MAX_BYTES; "
    "saved as `<KB_CORPUS_DIR>/<department>/<file name>`."
)
_DOC_METADATA = (
    "JSON object of metadata fields (docs/metadata.md) for every file; stored as a "
    "`<file>.meta.yaml` sidecar. Markdown and text may carry front matter instead."
)
_DOC_FILE_METADATA = (
    'JSON object mapping file names to metadata objects, e.g. {"guide.pdf": {"id": "guide"}}; '
    "merged over `metadata`."
)
_DOC_REPLACE = (
    "Replace the file at the same path, and the document holding the same id elsewhere in "
    "the corpus folder; without it either is a 409."
)


@router.post("/v1/documents", response_model=UploadOut, response_model_exclude_none=True)
async def upload_documents(
    services: ServicesDep,
    caller: AdminDep,
    files: Annotated[list[UploadFile], File(description=_DOC_FILES)],
    metadata: Annotated[str | None, Form(description=_DOC_METADATA)] = None,
    file_metadata: Annotated[str | None, Form(description=_DOC_FILE_METADATA)] = None,
    replace: Annotated[bool, Form(description=_DOC_REPLACE)] = False,
) -> dict[str, Any]:
    """Upload documents (admin role): checked, saved in the corpus folder, ingested. All or
    nothing: if a file is refused or fails to ingest, nothing is saved or changed, and the
    error names the file and what to do."""
    incoming = [IncomingFile(f.filename or "", f.file, f.size) for f in files]

    def run() -> dict[str, Any]:
        with exclusive(services.ingest_lock):
            result = services.uploader.upload(
                incoming, metadata=metadata, file_metadata=file_metadata, replace=replace
            )
        services.metrics.observe_ingest(result.report)
        log.info("key %s uploaded %s (replace=%s)", caller.key_id, result.doc_ids, replace)
        services.audit.append(
            caller.key_id,
            AuditAction.UPLOAD,
            ", ".join(result.doc_ids),
            {**result.report.summary(), "files": [f.name for f in incoming], "replace": replace},
        )
        return result.report.to_json() | {"doc_ids": result.doc_ids}

    return await run_in_threadpool(run)


@router.post("/v1/sync", response_model=IngestReportOut, response_model_exclude_none=True)
async def sync_corpus(services: ServicesDep, caller: AdminDep) -> dict[str, Any]:
    """Re-sync the corpus folder (KB_CORPUS_DIR; admin role): add new files, update changed
    ones, remove documents whose files are gone. Failed files are listed and keep their
    stored version."""

    def run() -> IngestReport:
        with exclusive(services.ingest_lock):
            root = corpus_root(services.corpus_dir)
            report = services.ingester.sync(root)
            services.audit.append(caller.key_id, AuditAction.SYNC, str(root), report.summary())
            return report

    report = await run_in_threadpool(run)
    services.metrics.observe_ingest(report)
    log.info(
        "key %s synced the corpus: added %d, updated %d, removed %d, failed %d",
        caller.key_id,
        *(len(x) for x in (report.added, report.updated, report.removed, report.failed)),
    )
    return report.to_json()
