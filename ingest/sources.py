"""Which files under a folder are documents, and their content fingerprints."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ingest.defaults import DEFAULTS_FILE
from ingest.metadata import SIDECAR_SUFFIX, sidecar_path
from ingest.parsing import FORMATS, format_of


@dataclass(frozen=True)
class SourceFile:
    path: Path  # absolute
    rel: str  # posix path relative to the ingested root: the document's stable location
    fmt: str


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


# A data folder (KB_DATA_DIR) holds this file: its store, logs and keys are never documents,
# even when the data folder sits inside the tree being ingested (`KB_DATA_DIR=./data kb ingest .`).
DATA_MARKER = ".kb-data"


# A symbolic link is followed only within the ingested tree: one leading out of it could pull
# in files (a home folder, /etc) that whoever chose the folder never meant to publish.
_OUTSIDE = (
    "a symbolic link leading outside the ingested folder: not followed; copy the document"
    " into the folder instead"
)


def _hidden(rel: Path) -> bool:
    return any(part.startswith((".", "_")) for part in rel.parts)


def mark_data_folder(folder: Path) -> None:
    """Mark `folder` as a data folder, so that ingesting a tree holding it skips it."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / DATA_MARKER
    if not marker.exists():
        marker.write_text("The knowledge base's data folder: never ingested as documents.\n")


def discover(root: Path) -> tuple[list[SourceFile], list[Failure]]:
    """Documents under `root` in a stable order, and files that cannot be documents.
    Hidden files and folders (a leading '.' or '_'), defaults files and data folders (marked
    with DATA_MARKER) are skipped; a symbolic link leading outside `root` is a failure."""
    files: list[SourceFile] = []
    failures: list[Failure] = []
    data_folders = {marker.parent for marker in root.rglob(DATA_MARKER)}
    real_root = root.resolve()
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(root)
        if _hidden(rel) or path.name == DEFAULTS_FILE:
            continue
        if data_folders and not data_folders.isdisjoint(path.parents):
            continue
        if not path.resolve().is_relative_to(real_root):
            failures.append(Failure(rel.as_posix(), _OUTSIDE))
            continue
        if path.name.endswith(SIDECAR_SUFFIX):
            document = path.with_name(path.name[: -len(SIDECAR_SUFFIX)])
            if not document.exists():
                failures.append(
                    Failure(rel.as_posix(), f"sidecar without its document {document.name}")
                )
            continue
        fmt = format_of(path)
        if fmt is None:
            supported = ", ".join(sorted(FORMATS))
            failures.append(
                Failure(
                    rel.as_posix(),
                    f"unsupported format '{path.suffix or '(none)'}': supported are {supported};"
                    " convert the file or move it out of the folder",
                )
            )
            continue
        files.append(SourceFile(path, rel.as_posix(), fmt))
    return files, failures


def fingerprint(source: SourceFile, pipeline: str, inputs: str = "") -> str:
    """sha256 over the pipeline identity, the file, its sidecar and the other `inputs` that
    decide its metadata (defaults): any change to one of them means the document must be
    re-ingested. Raises OSError if a file cannot be read."""
    digest = hashlib.sha256(pipeline.encode())
    digest.update(b"\0inputs\0" + inputs.encode())
    digest.update(b"\0file\0")
    digest.update(source.path.read_bytes())
    sidecar = sidecar_path(source.path)
    if sidecar.exists():
        digest.update(b"\0sidecar\0")
        digest.update(sidecar.read_bytes())
    return digest.hexdigest()
