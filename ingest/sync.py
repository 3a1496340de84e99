"""Make the store match a folder: incremental, convergent, and safe against bad input.

For each document the store goes through a small protocol whose every prefix is a state the
next run repairs:

1. the registry record is written with the new content hash and `state="writing"`;
2. the new chunks are upserted (their ids derive from the hash, so repeating this is harmless);
3. chunks of any other content hash of the document are deleted;
4. the record is written again with `state="ok"`.

A record that is not "ok" is redone on the next run whatever its hash, and chunks are only ever
written under a record, so a run killed anywhere converges, on the next run, to the store a
clean ingest of the final tree would give: no duplicates, no orphans, no mixed versions.
A document is removed chunks first, record last, for the same reason.

A file that fails (unreadable, removed mid-run, unparsable, bad metadata) is reported and
leaves whatever the store held for it untouched. A file whose metadata, defaults files and
folders leave doc_type, department or owner unsaid is ingested with neutral values and
reported under `warnings` (a key the report has only then), unless the ingest is strict.

A sync may be narrowed to some paths under the root (`only=`, used by uploads over HTTP): the
same protocol then runs for those paths alone. Other files are not read, and their documents are
neither updated nor removed; they only keep their ids, as documents of another root do.

A run that replaced or removed chunks ends with a cheap look for chroma-core/chroma#7758: a
sample of the chunks it wrote is queried with their own vectors, and any that dense search
cannot return are logged and reported (`unreachable`, a key the report has only then), with
the advice to run `kb store check --repair` (index/integrity.py, index/rebuild.py).

With a review store (index/reviews.py), a document marked reviewed keeps that review while its
content hash is unchanged: a rewritten version of the same content gets it over its file's
metadata, and an unchanged document whose record does not show it (a review interrupted before
its record was written) is restamped. A changed file's own metadata wins.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from index.embedding import Embedder
from index.errors import ConfigurationError, DocumentError, InvalidRequestError
from index.integrity import unreachable_chunks
from index.keyword import chunk_context
from index.records import Chunk, DocumentMeta, DocumentRecord, chunk_id, chunk_to_chroma
from index.reviews import ReviewStore, StoredReview, reviewed
from index.store import ChromaStore
from ingest.chunking import ChunkingOptions, chunk_blocks, embedding_text
from ingest.defaults import FolderDefaults, Layer
from ingest.metadata import (
    MetadataOptions,
    metadata_inputs,
    resolve_metadata,
    sidecar_path,
    split_front_matter,
)
from ingest.parsing import TEXT_FORMATS, decode_text, parse
from ingest.sources import Failure, SourceFile, discover, fingerprint
from ingest.titles import infer_title

PIPELINE_VERSION = "kb-ingest/2"
Progress = Callable[[int, int, str], None]
REACHABILITY_SAMPLE = 64  # chunks written by a run that replaced or removed some, re-queried
log = logging.getLogger("kb.ingest")


@dataclass(frozen=True)
class IngestWarning:
    """A document ingested with neutral values for required fields nothing gave."""

    path: str
    doc_id: str
    defaulted: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        fields = ", ".join(f"{k} '{v}'" for k, v in self.defaulted.items())
        return {
            "path": self.path,
            "doc_id": self.doc_id,
            "defaulted": self.defaulted,
            "reason": f"ingested with {fields}: neither its metadata, a kb-defaults.yaml nor its "
            "folder gives them; declare them (docs/metadata.md)",
        }


@dataclass
class IngestReport:
    """What a sync did. `--json` and the HTTP API print `to_json()`."""

    added: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    warnings: list[IngestWarning] = field(default_factory=list)  # written with neutral metadata
    unreachable: list[str] = field(default_factory=list)  # written chunks dense search misses
    written: list[str] = field(default_factory=list, repr=False)  # chunk ids this run wrote

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> dict[str, Any]:
        """What changed, briefly (the audit log's record of a run): the ids added, updated
        and removed, the paths that failed, and how many were unchanged."""
        return {
            "added": [e["doc_id"] for e in self.added],
            "updated": [e["doc_id"] for e in self.updated],
            "removed": [e["doc_id"] for e in self.removed],
            "failed": [f.path for f in self.failed],
            "unchanged": len(self.unchanged),
        }

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "failed": [f.to_json() for f in self.failed],
        }
        # Only when there are some, so that the usual report keeps its five keys.
        if self.warnings:
            out["warnings"] = [w.to_json() for w in self.warnings]
        if self.unreachable:
            out["unreachable"] = self.unreachable
        return out


@dataclass
class _Prepared:
    source: SourceFile
    meta: DocumentMeta
    content_hash: str
    chunks: list[Chunk]
    defaulted: dict[str, str]
    context: str = ""  # embedded before each chunk, not stored


@dataclass(frozen=True)
class _Pending:
    source: SourceFile
    content_hash: str
    defaults: Layer


class Ingester:
    """Syncs folders into one store with one embedding model."""

    def __init__(
        self,
        store: ChromaStore,
        embedder: Embedder,
        *,
        chunking: ChunkingOptions | None = None,
        embed_batch_chunks: int = 512,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        reachability_sample: int = REACHABILITY_SAMPLE,
        metadata: MetadataOptions | None = None,
        reviews: ReviewStore | None = None,
    ) -> None:
        self._store = store
        self._reviews = reviews
        self._embedder = embedder
        self._chunking = chunking or ChunkingOptions()
        self._batch = embed_batch_chunks
        self._clock = clock
        self._reachability_sample = reachability_sample
        self._metadata = metadata or MetadataOptions()
        c = self._chunking
        self.pipeline = (
            f"{PIPELINE_VERSION};{embedder.name};{c.max_tokens};{c.overlap_tokens};{c.min_tokens}"
        ) + (";context" if c.context_line else "")

    def sync(
        self,
        root: Path,
        progress: Progress | None = None,
        *,
        only: Collection[str] | None = None,
        defaults: Mapping[str, Any] | None = None,
        strict: bool | None = None,
    ) -> IngestReport:
        """Make the store match `root`; with `only` (posix paths relative to `root`), match
        those paths alone: a listed path without a file removes its document. `defaults`:
        metadata defaults for this run, below every kb-defaults.yaml; `strict`: overrides the
        ingester's own strictness for this run."""
        root = root.resolve()
        if not root.is_dir():
            raise InvalidRequestError("path", f"{root} is not a folder: pass the folder to ingest")
        options = self._metadata if strict is None else replace(self._metadata, strict=strict)
        folder_defaults = FolderDefaults(root, defaults)
        report = IngestReport()
        files, report.failed = discover(root)
        if only is not None:
            files = [f for f in files if f.rel in only]
            report.failed = [f for f in report.failed if f.path in only]

        def in_scope(record: DocumentRecord) -> bool:
            return record.root == str(root) and (only is None or record.path in only)

        records = self._store.documents()
        mine = {r.doc_id: r for r in records if in_scope(r)}
        by_path = {r.path: r for r in mine.values()}
        elsewhere = {r.doc_id: r for r in records if not in_scope(r)}
        stored = self._reviews.all() if self._reviews else {}

        live: dict[str, str] = {}  # doc id -> rel path of the file that holds it this run
        pending: list[_Pending] = []
        for source in files:
            previous = by_path.get(source.rel)
            try:
                layer = folder_defaults.for_file(source.path)
                inputs = metadata_inputs(source.path, root, layer, options)
                content_hash = fingerprint(source, self.pipeline, inputs)
            except OSError as exc:
                reason = f"cannot read: {exc.strerror or exc}"
                self._keep_previous(previous, source, reason, live, report)
                continue
            except DocumentError as exc:  # a defaults file that applies to it is at fault
                reason = _reason(root, source, exc)
                self._keep_previous(previous, source, reason, live, report)
                continue
            if previous and previous.content_hash == content_hash and previous.state == "ok":
                live[previous.doc_id] = source.rel
                report.unchanged.append({"doc_id": previous.doc_id, "path": source.rel})
                self._keep_review(previous, stored.get(previous.doc_id))
            else:
                pending.append(_Pending(source, content_hash, layer))

        batch: list[_Prepared] = []
        for done, item in enumerate(pending, start=1):
            source = item.source
            if progress:
                progress(done, len(pending), source.rel)
            previous = by_path.get(source.rel)
            try:
                prepared = self._prepare(root, item, options, stored)
                self._claim(prepared, live, elsewhere)
            except DocumentError as exc:
                reason = _reason(root, source, exc)
                self._keep_previous(previous, source, reason, live, report)
                continue
            live[prepared.meta.id] = source.rel
            batch.append(prepared)
            if sum(len(p.chunks) for p in batch) >= self._batch:
                self._write(root, batch, mine, report)
                batch = []
        self._write(root, batch, mine, report)

        for doc_id, record in sorted(mine.items()):
            if doc_id not in live:
                self._store.delete_document(doc_id)
                report.removed.append({"doc_id": doc_id, "path": record.path})
        if report.changed:
            self._store.bump_generation()
        if report.updated or report.removed:
            self._look_for_unreachable(report)
        return report

    def _look_for_unreachable(self, report: IngestReport) -> None:
        """Re-query a sample of the chunks this run wrote with their own vectors: a run that
        replaced or removed chunks is what makes Chroma lose some (chroma-core/chroma#7758)."""
        size = min(self._reachability_sample, len(report.written))
        if size <= 0:
            return
        report.unreachable = sorted(
            unreachable_chunks(self._store, random.sample(report.written, size))
        )
        if report.unreachable:
            log.warning(
                "%d of %d chunks just written cannot be found by dense search "
                "(chroma-core/chroma#7758): run `kb store check --repair`",
                len(report.unreachable),
                size,
            )

    def _check_window(self) -> None:
        window = self._embedder.max_tokens - 2
        if self._chunking.max_tokens > window:
            raise ConfigurationError(
                f"chunks of {self._chunking.max_tokens} word pieces do not fit the embedding "
                f"model's window of {window}: lower KB_CHUNK_MAX_TOKENS"
            )

    @staticmethod
    def _keep_previous(
        previous: DocumentRecord | None,
        source: SourceFile,
        reason: str,
        live: dict[str, str],
        report: IngestReport,
    ) -> None:
        """A failed file keeps what the store held for it, if that was a complete version.
        A version left half-written by an interrupted run is not kept (it would mix old and
        new chunks): it is removed with the other documents that are not live."""
        if previous and previous.state in ("ok", "resync"):  # resync: one version, whole
            live.setdefault(previous.doc_id, source.rel)
        elif previous:
            reason += "; its half-written earlier version was removed"
        report.failed.append(Failure(source.rel, reason))

    def _keep_review(self, record: DocumentRecord, review: StoredReview | None) -> None:
        """Restamp an unchanged document whose record does not show its stored review."""
        if review is None or not review.applies_to(record.doc_id, record.content_hash):
            return
        meta = reviewed(record.meta, review)
        if meta != record.meta:
            self._store.restamp_document(replace(record, meta=meta))

    def _prepare(
        self,
        root: Path,
        item: _Pending,
        options: MetadataOptions,
        stored: Mapping[str, StoredReview],
    ) -> _Prepared:
        source = item.source
        body: str | None = None
        front: str | None = None
        try:
            if source.fmt in TEXT_FORMATS:
                data = source.path.read_bytes()
                front, body = split_front_matter(decode_text(source.path, data))
            blocks = parse(source.path, source.fmt, body)
        except OSError as exc:  # removed or made unreadable since it was hashed
            raise DocumentError(source.path, f"cannot read: {exc.strerror or exc}") from exc
        resolved = resolve_metadata(
            source.path,
            root,
            front,
            infer_title(source.path, source.fmt, blocks),
            defaults=item.defaults,
            options=options,
        )
        meta = resolved.meta
        review = stored.get(meta.id)
        if review is not None and review.applies_to(meta.id, item.content_hash):
            meta = reviewed(meta, review)  # the same content, reviewed since it was written
        context = self._context_line(source.rel, meta)
        chunks = chunk_blocks(
            blocks,
            title=meta.title,
            count_tokens=self._embedder.count_tokens,
            options=self._chunking,
            context=context,
        )
        if not chunks:  # nothing to embed: a file's failure, not a crash of the whole run
            raise DocumentError(source.path, "parsed to no text to index")
        return _Prepared(source, meta, item.content_hash, chunks, resolved.defaulted, context)

    def _context_line(self, rel: str, meta: DocumentMeta) -> str:
        """The line embedded with each chunk (the keyword index makes the same one from the
        chunk's metadata), or none when the chunking options turn it off."""
        if not self._chunking.context_line:
            return ""
        return chunk_context(rel, meta.department, meta.doc_type.value)

    @staticmethod
    def _claim(
        prepared: _Prepared, live: dict[str, str], elsewhere: dict[str, DocumentRecord]
    ) -> None:
        doc_id = prepared.meta.id
        holder = live.get(doc_id) or (
            str(elsewhere[doc_id].source) if doc_id in elsewhere else None
        )
        if holder and holder != prepared.source.rel:
            raise DocumentError(
                prepared.source.path,
                f"document id '{doc_id}' is already used by {holder}; "
                "give this document its own `id` in its metadata",
            )

    def _write(
        self,
        root: Path,
        batch: list[_Prepared],
        existing: dict[str, DocumentRecord],
        report: IngestReport,
    ) -> None:
        if not batch:
            return
        self._check_window()
        texts = [
            embedding_text(p.meta.title, c.section, c.text, p.context)
            for p in batch
            for c in p.chunks
        ]
        vectors = self._embedder.embed(texts)
        start = 0
        for prepared in batch:
            n = len(prepared.chunks)
            report.written += self._write_document(root, prepared, vectors[start : start + n])
            start += n
            entry = {"doc_id": prepared.meta.id, "path": prepared.source.rel, "chunks": n}
            (report.updated if prepared.meta.id in existing else report.added).append(entry)
            if prepared.defaulted:
                report.warnings.append(
                    IngestWarning(prepared.source.rel, prepared.meta.id, prepared.defaulted)
                )

    def _write_document(self, root: Path, prepared: _Prepared, vectors: np.ndarray) -> list[str]:
        record = DocumentRecord(
            meta=prepared.meta,
            path=prepared.source.rel,
            root=str(root),
            format=prepared.source.fmt,
            content_hash=prepared.content_hash,
            chunk_count=len(prepared.chunks),
            ingested_at=self._clock(),
            state="writing",
        )
        mean = vectors.mean(axis=0)
        mean = mean / (np.linalg.norm(mean) or 1.0)
        self._store.put_document(record, mean)
        ids = [chunk_id(record.doc_id, record.content_hash, i) for i in range(len(prepared.chunks))]
        self._store.upsert_chunks(
            ids,
            vectors,
            [c.text for c in prepared.chunks],
            [chunk_to_chroma(record, c, i) for i, c in enumerate(prepared.chunks)],
        )
        self._store.delete_other_versions(record.doc_id, record.content_hash)
        self._store.put_document(_ok(record), mean)
        return ids


def _reason(root: Path, source: SourceFile, exc: DocumentError) -> str:
    """The error's reason, prefixed with the file at fault when it is not the document itself
    (its sidecar, or a defaults file), named relative to the root."""
    at_fault = Path(exc.path)
    if at_fault == source.path:
        return exc.reason
    try:
        shown = at_fault.relative_to(root).as_posix()
    except ValueError:
        shown = str(at_fault)
    if at_fault == sidecar_path(source.path):  # the name says enough
        shown = at_fault.name
    return f"{shown}: {exc.reason}"


def _ok(record: DocumentRecord) -> DocumentRecord:
    return replace(record, state="ok")
