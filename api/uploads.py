"""Documents uploaded over HTTP: checked, saved into the corpus folder, ingested, or undone.

An upload goes through four steps, and leaves the folder and the store as they were unless all
of them succeed:

1. **Check before writing anything.** Every file name is made safe (`safe_name`) and its format
   must be one ingestion reads (`ingest.parsing.FORMATS`). Metadata, from the request or from
   Markdown front matter, is validated by the same code as ingestion (`read_metadata` over the
   staged file and sidecar), which also gives the department folder the file goes in and its
   id. A file at that path, or a document elsewhere with that id, is a conflict unless the
   request says `replace=true`.
2. **Stage** each file and its `<file>.meta.yaml` sidecar in a hidden folder inside the corpus
   folder (`.kb-upload-*`: sync skips hidden folders, and renames from there are atomic).
3. **Move into place** with `os.replace`, after moving whatever they replace into the staging
   folder, so that it can be put back.
4. **Ingest only the uploaded paths** (`Ingester.sync(root, only=...)`): documents of other files
   are neither re-read nor removed, so an upload never removes a document whose file went
   missing since the last full sync. If a file fails, or ingestion raises, the moves are undone
   and the same paths are synced again, which returns the store to what the restored folder
   holds (the sync protocol converges from any state; ingest/sync.py).

The caller holds the ingest lock (`exclusive`) around all of it, so no other upload or sync
sees the folder half-written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from index.errors import (
    ConfigurationError,
    ConflictError,
    DocumentError,
    InvalidRequestError,
    TooLargeError,
)
from index.filelock import FileLock
from index.records import DocumentMeta, DocumentRecord
from index.store import ChromaStore
from ingest.metadata import read_metadata, sidecar_path, split_front_matter
from ingest.parsing import FORMATS, TEXT_FORMATS, decode_text, format_of
from ingest.sources import Failure
from ingest.sync import Ingester, IngestReport

log = logging.getLogger("kb.api")

MAX_FILES = 10
MAX_NAME_CHARS = 120
_MAX_NAME_BYTES = 200  # leaves room for ".meta.yaml" within the usual 255-byte limit
_COPY_CHUNK = 1 << 20
_STAGING_PREFIX = ".kb-upload-"


@dataclass(frozen=True)
class IncomingFile:
    """One uploaded file, as the client sent it."""

    name: str
    stream: BinaryIO
    size: int | None = None


@dataclass(frozen=True)
class UploadResult:
    report: IngestReport
    doc_ids: list[str]


@dataclass(frozen=True)
class _Staged:
    name: str  # safe file name
    rel: str  # where it goes, relative to the corpus folder: <department>/<name>
    file: Path  # staged copy
    sidecar: Path | None  # staged sidecar, if the metadata came with the request
    meta: DocumentMeta


def corpus_root(corpus_dir: Path) -> Path:
    """The corpus folder, resolved; ConfigurationError naming KB_CORPUS_DIR if it is missing."""
    root = corpus_dir.resolve()
    if not root.is_dir():
        raise ConfigurationError(
            f"KB_CORPUS_DIR={corpus_dir} is not a folder: create it, or point KB_CORPUS_DIR at "
            "the knowledge-base folder"
        )
    return root


@contextmanager
def exclusive(lock: FileLock) -> Iterator[None]:
    """Hold the ingest lock, or fail at once (409 over HTTP): an ingest takes seconds to
    minutes, and a request waiting for it would hold a worker thread and likely time out."""
    if not lock.try_acquire():
        raise ConflictError(
            "another upload or sync is running on this data folder (an upload, POST /v1/sync, "
            "a review or `kb ingest`, in any process): retry when it has finished (it is not "
            "queued)"
        )
    try:
        yield
    finally:
        lock.release()


def safe_name(raw: str | None) -> str:
    """The file name to store, or DocumentError saying what is wrong with it. Names are
    refused, never rewritten (beyond Unicode NFC and surrounding blanks), so that what is
    stored is what the client named."""
    name = unicodedata.normalize("NFC", raw or "").strip()
    shown = ascii(raw or "")
    if not name:
        raise DocumentError(shown, "the file has no name: send one such as guide.pdf")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise DocumentError(shown, "the name contains control or invisible characters: rename it")
    if "/" in name or "\\" in name:
        raise DocumentError(
            shown,
            "the name contains a path separator: send the bare file name (the folder is chosen "
            "from the document's department)",
        )
    if ".." in name:
        raise DocumentError(shown, "the name contains '..': rename it")
    if name.startswith((".", "_")):
        raise DocumentError(
            shown, "names starting with '.' or '_' are hidden from ingestion: rename it"
        )
    if len(name) > MAX_NAME_CHARS or len(name.encode()) > _MAX_NAME_BYTES:
        raise DocumentError(
            shown, f"the name is longer than {MAX_NAME_CHARS} characters: shorten it"
        )
    if format_of(Path(name)) is None:
        suffix = Path(name).suffix or "(none)"
        raise DocumentError(
            name,
            f"unsupported format '{suffix}': supported are {', '.join(sorted(FORMATS))}; "
            "convert the file",
        )
    return name


def parse_metadata(
    metadata: str | None, file_metadata: str | None, names: Sequence[str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(metadata shared by every file, metadata per file name) from the two JSON form fields:
    `metadata` is one object of fields (docs/metadata.md), `file_metadata` maps file names to
    such objects; per-file fields win."""
    shared = _json_object("metadata", metadata)
    per_file: dict[str, dict[str, Any]] = {}
    for key, value in _json_object("file_metadata", file_metadata).items():
        name = unicodedata.normalize("NFC", key).strip()
        if name not in names:
            raise InvalidRequestError(
                "file_metadata",
                f"names '{key}', which is not an uploaded file (sent: {', '.join(names)})",
            )
        if not isinstance(value, dict):
            raise InvalidRequestError(
                "file_metadata", f"'{key}' must map to an object of metadata fields"
            )
        per_file[name] = value
    if "id" in shared and len(names) > 1:
        raise InvalidRequestError(
            "metadata",
            f"'id' would be shared by {len(names)} files: give each file its id in `file_metadata`",
        )
    return shared, per_file


def _json_object(field: str, text: str | None) -> dict[str, Any]:
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(field, f"not valid JSON ({exc.msg} at {exc.pos})") from exc
    except RecursionError as exc:
        raise InvalidRequestError(field, "nested too deeply") from exc
    if not isinstance(value, dict):
        raise InvalidRequestError(
            field, "must be a JSON object of metadata fields (docs/metadata.md)"
        )
    return value


class Uploader:
    """Saves uploaded files into the corpus folder and ingests them (see the module doc)."""

    def __init__(
        self, ingester: Ingester, store: ChromaStore, corpus_dir: Path, max_bytes: int
    ) -> None:
        self._ingester = ingester
        self._store = store
        self._corpus_dir = corpus_dir
        self._max_bytes = max_bytes

    def upload(
        self,
        files: Sequence[IncomingFile],
        *,
        metadata: str | None = None,
        file_metadata: str | None = None,
        replace: bool = False,
    ) -> UploadResult:
        root = corpus_root(self._corpus_dir)
        if not files:
            raise InvalidRequestError("files", "send at least one file")
        if len(files) > MAX_FILES:
            raise InvalidRequestError(
                "files", f"at most {MAX_FILES} files per request: send the rest in another one"
            )
        names = [safe_name(f.name) for f in files]
        shared, per_file = parse_metadata(metadata, file_metadata, names)
        try:
            staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=root))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write to KB_CORPUS_DIR ({root}): {exc.strerror}; uploads need a "
                "writable corpus folder"
            ) from exc
        try:
            staged = [
                self._stage(staging / str(i), name, incoming, shared | per_file.get(name, {}))
                for i, (name, incoming) in enumerate(zip(names, files, strict=True))
            ]
            _check_distinct(staged)
            displaced = self._check_conflicts(root, staged, replace)
            return self._commit(root, staging / "replaced", staged, displaced)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _stage(
        self, folder: Path, name: str, incoming: IncomingFile, declared: dict[str, Any]
    ) -> _Staged:
        """Copy the file (and its metadata as a sidecar) into `folder`, and validate the
        metadata there as ingestion will."""
        folder.mkdir()
        path = folder / name
        self._copy(incoming, path)
        front: str | None = None
        try:
            if format_of(path) in TEXT_FORMATS:
                front, _ = split_front_matter(decode_text(path, path.read_bytes()))
            if front is not None and declared:
                raise DocumentError(
                    path,
                    "has front matter and metadata in the request too: keep one (the front "
                    "matter, or the `metadata` field)",
                )
            sidecar = None
            if declared:
                sidecar = sidecar_path(path)
                _write_synced(sidecar, _yaml(declared))
            meta = read_metadata(path, folder, front, None)
        except DocumentError as exc:  # name the file as the client knows it
            raise DocumentError(name, exc.reason) from exc
        return _Staged(name, f"{meta.department}/{name}", path, sidecar, meta)

    def _copy(self, incoming: IncomingFile, path: Path) -> None:
        limit = self._max_bytes
        too_large = TooLargeError(
            f"{path.name}: over the upload limit of {limit} bytes (KB_UPLOAD_MAX_BYTES): "
            "split or compress the document"
        )
        if incoming.size is not None and incoming.size > limit:
            raise too_large
        copied = 0
        with path.open("xb") as out:
            while chunk := incoming.stream.read(_COPY_CHUNK):
                copied += len(chunk)
                if copied > limit:
                    raise too_large
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if copied == 0:
            raise DocumentError(path.name, "the file is empty")

    def _check_conflicts(self, root: Path, staged: list[_Staged], replace: bool) -> set[str]:
        """ConflictError for a path or id already taken, unless `replace`; with it, the paths
        of the documents elsewhere in the corpus folder whose ids the upload takes over."""
        records = self._store.documents()
        at_path = {r.path: r for r in records if r.root == str(root)}
        by_id = {r.doc_id: r for r in records}
        displaced: set[str] = set()
        for item in staged:
            target = root / item.rel
            present = at_path.get(item.rel)
            if not replace and (present or _exists(target) or _exists(sidecar_path(target))):
                held = f" (document '{present.doc_id}')" if present else ""
                raise ConflictError(
                    f"{item.rel} already exists{held}: send replace=true to replace it"
                )
            holder = by_id.get(item.meta.id)
            if holder is None or (holder.root == str(root) and holder.path == item.rel):
                continue
            displaced.add(_displaceable(root, item, holder, replace))
        return displaced

    def _commit(
        self, root: Path, backups: Path, staged: list[_Staged], displaced: set[str]
    ) -> UploadResult:
        moves = _Moves(backups)
        paths = {s.rel for s in staged} | displaced
        try:
            for rel in displaced:
                moves.set_aside(root / rel)
                moves.set_aside(sidecar_path(root / rel))
            for item in staged:
                target = _inside(root, item.rel)
                moves.set_aside(target)
                moves.set_aside(sidecar_path(target))
                if item.sidecar:
                    moves.place(item.sidecar, sidecar_path(target))
                moves.place(item.file, target)
            report = self._ingester.sync(root, only=paths)
            _check_ingested(report, staged)
        except BaseException:
            self._undo(root, moves, paths)
            raise
        return UploadResult(report, [s.meta.id for s in staged])

    def _undo(self, root: Path, moves: _Moves, paths: set[str]) -> None:
        """Put the folder back, then sync the same paths so that the store follows it."""
        try:
            moves.undo()
        except OSError:
            log.exception("could not put back every file replaced by an upload")
        try:
            self._ingester.sync(root, only=paths)
        except Exception:
            log.exception("could not undo an upload in the store: run POST /v1/sync")


class _Moves:
    """Files moved into the corpus folder and files moved out of the way, in order, so that
    `undo` can put everything back."""

    def __init__(self, backups: Path) -> None:
        self._backups = backups
        self._placed: list[Path] = []
        self._set_aside: list[tuple[Path, Path]] = []
        self._made: list[Path] = []

    def set_aside(self, path: Path) -> None:
        if not _exists(path):
            return
        self._backups.mkdir(exist_ok=True)
        backup = self._backups / str(len(self._set_aside))
        os.replace(path, backup)
        self._set_aside.append((path, backup))

    def place(self, staged: Path, target: Path) -> None:
        missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
        target.parent.mkdir(parents=True, exist_ok=True)
        self._made.extend(reversed(missing))
        os.replace(staged, target)
        self._placed.append(target)

    def undo(self) -> None:
        for target in reversed(self._placed):
            target.unlink(missing_ok=True)
        for original, backup in reversed(self._set_aside):
            os.replace(backup, original)
        for folder in reversed(self._made):
            with suppress(OSError):  # something else was put there meanwhile: keep it
                folder.rmdir()


def _check_ingested(report: IngestReport, staged: list[_Staged]) -> None:
    """DocumentError for a file that failed; ConfigurationError for one ingestion did not
    find (the response must not claim a document that is not in the store)."""
    if report.failed:
        raise _failure(report.failed)
    found = {e["path"] for e in (*report.added, *report.updated, *report.unchanged)}
    for item in staged:
        if item.rel not in found:
            raise ConfigurationError(
                f"{item.rel} was saved but ingestion did not find it: check KB_CORPUS_DIR"
            )


def _check_distinct(staged: list[_Staged]) -> None:
    seen_paths: set[str] = set()
    seen_ids: dict[str, str] = {}
    for item in staged:
        if item.rel in seen_paths:
            raise InvalidRequestError("files", f"{item.rel} is sent twice")
        if item.meta.id in seen_ids:
            raise InvalidRequestError(
                "files",
                f"{item.name} and {seen_ids[item.meta.id]} both have the id '{item.meta.id}': "
                "give each its own id",
            )
        seen_paths.add(item.rel)
        seen_ids[item.meta.id] = item.name


def _displaceable(root: Path, item: _Staged, holder: DocumentRecord, replace: bool) -> str:
    """The path of the document whose id `item` takes over, if `replace` allows it."""
    inside = holder.root == str(root)
    where = holder.path if inside else str(holder.source)
    if not replace:
        raise ConflictError(
            f"{item.name}: document id '{item.meta.id}' is already used by {where}: give this "
            "document its own `id`, or send replace=true to replace that document"
        )
    if not inside:
        raise ConflictError(
            f"{item.name}: document id '{item.meta.id}' is used by {where}, outside "
            "KB_CORPUS_DIR, which an upload cannot replace: give this document its own `id`"
        )
    _inside(root, holder.path)
    return holder.path


def _inside(root: Path, rel: str) -> Path:
    """`root / rel`, refusing a folder that is, or passes through, a link: a link may lead out
    of the corpus folder, and sync does not follow linked folders."""
    path = root / rel
    if path.parent.resolve() != path.parent:
        raise ConfigurationError(
            f"{rel}: its folder in KB_CORPUS_DIR ({root}) is a link; uploads are not saved "
            "through links"
        )
    return path


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _yaml(declared: dict[str, Any]) -> bytes:
    return yaml.safe_dump(declared, sort_keys=False, allow_unicode=True).encode()


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("xb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _failure(failed: list[Failure]) -> DocumentError:
    first, *others = failed
    reason = first.reason
    if others:
        reason += "; also " + "; ".join(f"{f.path}: {f.reason}" for f in others)
    return DocumentError(
        first.path, f"{reason}. Nothing was stored: fix the file and upload it again"
    )
