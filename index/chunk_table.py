"""Every chunk's metadata, kept compactly: once per document version, plus a few columns.

A chunk's metadata is its document's (type, department, access, review dates, path, ...) and
four keys of its own (`records.chunk_to_chroma`: chunk_index, section, page, page_end). Held as
a dict per chunk, a million chunks cost gigabytes; here each distinct document part is held
once, each chunk points at it, and its own keys are integer columns and an interned section.
A chunk whose own key has an unexpected type keeps it in its document part instead (the part is
then its alone): nothing is lost, only less compact.

Filters (`index.filters.matches`) are evaluated once per document part when they name only
document keys, which every clause `build_where` makes does, and broadcast to the chunks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from index.filters import Where, matches

_INT_KEYS = ("chunk_index", "page", "page_end")
_TEXT_KEYS = ("section",)
_CHUNK_KEYS = frozenset(_INT_KEYS + _TEXT_KEYS)
_NONE = np.iinfo(np.int32).min  # a column's "no such key"
_INT32 = (int(np.iinfo(np.int32).min) + 1, int(np.iinfo(np.int32).max))


class ChunkTable:
    def __init__(
        self,
        documents: list[dict[str, Any]],
        document_of: np.ndarray,
        ints: dict[str, np.ndarray],
        sections: list[str],
        section_of: np.ndarray,
    ) -> None:
        self.documents = documents
        self._document_of = document_of
        self._ints = ints
        self._sections = sections
        self._section_of = section_of

    def __len__(self) -> int:
        return len(self._document_of)

    def metadata(self, row: int) -> dict[str, Any]:
        """Chunk `row`'s metadata as the store holds it (a new dict)."""
        out = dict(self.documents[self._document_of[row]])
        for key, column in self._ints.items():
            value = column[row]
            if value != _NONE:
                out[key] = int(value)
        section = self._section_of[row]
        if section != _NONE:
            out["section"] = self._sections[section]
        return out

    def mask(self, where: Where) -> np.ndarray:
        """Which chunks `where` admits."""
        if _keys(where) & _CHUNK_KEYS:
            rows = range(len(self))
            return np.fromiter((matches(where, self.metadata(i)) for i in rows), dtype=bool)
        admitted = np.fromiter((matches(where, d) for d in self.documents), dtype=bool)
        return admitted[self._document_of] if len(admitted) else np.zeros(len(self), bool)

    def save(self, folder: Path) -> None:
        text = {"documents": self.documents, "sections": self._sections}
        (folder / "chunk_table.json").write_text(json.dumps(text), encoding="utf-8")
        columns: dict[str, Any] = {
            "document_of": self._document_of,
            "section_of": self._section_of,
            **self._ints,
        }
        np.savez(folder / "chunk_table.npz", **columns)

    @classmethod
    def load(cls, folder: Path) -> ChunkTable:
        text = json.loads((folder / "chunk_table.json").read_text(encoding="utf-8"))
        with np.load(folder / "chunk_table.npz", allow_pickle=False) as columns:
            ints = {key: columns[key] for key in _INT_KEYS}
            return cls(
                text["documents"], columns["document_of"], ints, text["sections"],
                columns["section_of"],
            )  # fmt: skip


class ChunkTableBuilder:
    """Takes chunk metadata a page at a time, in row order."""

    def __init__(self) -> None:
        self._documents: list[dict[str, Any]] = []
        self._known: dict[str, int] = {}  # document part as JSON -> its row
        self._last: dict[tuple[Any, Any], tuple[dict[str, Any], int]] = {}
        self._document_of: list[int] = []
        self._ints: dict[str, list[int]] = {key: [] for key in _INT_KEYS}
        self._sections: dict[str, int] = {}
        self._section_of: list[int] = []

    def add(self, metadatas: Iterable[dict[str, Any]]) -> None:
        for md in metadatas:
            part = dict(md)
            for key in _INT_KEYS:
                value = part.get(key)
                if _is_int32(value):
                    self._ints[key].append(part.pop(key))
                else:
                    self._ints[key].append(_NONE)
            section = part.get("section")
            if isinstance(section, str):
                del part["section"]
                self._section_of.append(self._sections.setdefault(section, len(self._sections)))
            else:
                self._section_of.append(_NONE)
            self._document_of.append(self._document_row(part))

    def _document_row(self, part: dict[str, Any]) -> int:
        # Chunks of one document version come together and share their part: compare with the
        # last one seen for that version before serialising.
        version = (part.get("doc_id"), part.get("content_hash"))
        last = self._last.get(version)
        if last is not None and last[0] == part:
            return last[1]
        key = json.dumps(part, sort_keys=True)
        row = self._known.get(key)
        if row is None:
            row = self._known[key] = len(self._documents)
            self._documents.append(part)
        self._last[version] = (part, row)
        return row

    def build(self) -> ChunkTable:
        return ChunkTable(
            self._documents,
            np.asarray(self._document_of, dtype=np.int32),
            {key: np.asarray(values, dtype=np.int32) for key, values in self._ints.items()},
            sorted(self._sections, key=self._sections.__getitem__),
            np.asarray(self._section_of, dtype=np.int32),
        )


def _is_int32(value: Any) -> bool:
    return type(value) is int and _INT32[0] <= value <= _INT32[1]


def _keys(where: Where) -> set[str]:
    keys: set[str] = set()
    for key, condition in where.items():
        if key in ("$and", "$or"):
            for clause in condition:
                keys |= _keys(clause)
        else:
            keys.add(key)
    return keys
