"""BM25 keyword search, derived from the chunks collection.

Local Chroma has no sparse index, so this one is built from the collection's text and kept
beside the store (`<data_dir>/bm25/<collection>/`). It records the store generation it was
built from; every search first compares that with the store's current generation (one cheap
call) and rebuilds when another process (or this one) changed the collection: before the
query for a small index, in the background for a large one (`KeywordIndex.current`). The
matrix is `index/bm25.py`'s, the metadata copy `index/chunk_table.py`'s. Filters and access
control are applied as a mask over the corpus *before* ranking, with the same `where` clause
the dense path uses, so the top-k is drawn only from allowed chunks.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from index.bm25 import BM25Builder, BM25Matrix
from index.chunk_table import ChunkTable, ChunkTableBuilder
from index.filters import Where
from index.store import ChromaStore

log = logging.getLogger("kb.index")

_TOKEN = re.compile(r"\d+(?:[.,]\d+)+%?|\w+", re.UNICODE)
_MASKS_KEPT = 64
_FORMAT = "bm25-matrix-1"  # saved by index/bm25.py and index/chunk_table.py
# From this many chunks, a new generation's index is built while the previous one serves
# (about 7 s of build on two cores: evals/README.md, "Growth to a million chunks").
BACKGROUND_ABOVE = 20_000
_LEFT_BEHIND_SECONDS = 3600  # a save's folder this old was left by a killed process


def english_stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


class Tokenizer:
    """Lowercase words and numbers ("0.85", "81%" stay whole), English stopwords out,
    Snowball-stemmed. The same function reads documents and queries."""

    def __init__(self) -> None:
        import Stemmer

        self._stem = Stemmer.Stemmer("english").stemWord
        self._stop = english_stopwords()

    def __call__(self, text: str) -> list[str]:
        words = (w for w in _TOKEN.findall(text.lower()) if w not in self._stop)
        return [self._stem(w) for w in words]


@dataclass
class _Built:
    generation: str
    ids: list[str]
    table: ChunkTable
    bm25: BM25Matrix
    masks: OrderedDict[str, np.ndarray]
    positions: dict[str, int] = field(default_factory=dict)  # id -> row, made on first use


class KeywordIndex:
    """BM25 over every chunk of a store, rebuilt when the store's generation changes."""

    def __init__(
        self,
        store: ChromaStore,
        folder: Path | None,
        tokenizer: Tokenizer,
        *,
        context_line: bool = False,
        background_above: int = BACKGROUND_ABOVE,
    ) -> None:
        self._store = store
        self._folder = folder
        self._tokenize = tokenizer
        # Index each chunk with its `chunk_context` line. Off by default: it lifted golden
        # hit@1 0.802->0.845 at equal hit@5, but every chunk of a document then matches its
        # own name, so a comparison's part search ("the Ask Kestrel chatbot") found the
        # document's introduction instead of its cost section (evals/README.md, "Context in
        # every chunk").
        self._context = context_line
        self._built: _Built | None = None
        self._lock = threading.Lock()
        self._background_above = background_above
        self._builder: threading.Thread | None = None

    def search(
        self, query: str, k: int, where: Where | None
    ) -> list[tuple[str, float, dict[str, Any]]]:
        """Top-k (chunk id, BM25 score, metadata) among chunks matching `where`, best first;
        zero scores left out."""
        built = self.current()
        tokens = self._tokenize(query)
        if not built.ids or not tokens or k <= 0:
            return []
        scores = built.bm25.scores(tokens)
        mask = self._mask(built, where)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [
            (built.ids[i], float(scores[i]), built.table.metadata(i)) for i in top if scores[i] > 0
        ]

    def metadata(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The index's copy of the given chunks' metadata, by id; ids it does not hold (a
        chunk written after its generation was read) are left out."""
        built = self.current()
        positions = self._positions(built)
        rows = ((cid, positions.get(cid)) for cid in ids)
        return {cid: built.table.metadata(i) for cid, i in rows if i is not None}

    def admitted(self, ids: Sequence[str], where: Where | None) -> dict[str, bool]:
        """Whether `where` admits each of the given chunks, by id; ids the index does not
        hold are left out."""
        built = self.current()
        mask = self._mask(built, where)
        positions = self._positions(built)
        rows = ((cid, positions.get(cid)) for cid in ids)
        return {cid: mask is None or bool(mask[i]) for cid, i in rows if i is not None}

    def _positions(self, built: _Built) -> dict[str, int]:
        with self._lock:
            if not built.positions and built.ids:
                built.positions = {cid: i for i, cid in enumerate(built.ids)}
            return built.positions

    def allowed_share(self, where: Where | None) -> float:
        """The share of all chunks that `where` admits (1.0 without a clause)."""
        built = self.current()
        mask = self._mask(built, where)
        if mask is None or not len(mask):
            return 1.0
        return float(mask.mean())

    def current(self) -> _Built:
        """The index of the store's current generation. A large index (`background_above`
        chunks or more) is rebuilt in a background thread while the previous one keeps
        serving: a query then never waits for a build (33 s at 100k chunks, minutes at 1M).
        Meanwhile keyword search misses the newest chunks (dense search finds them), and
        what it returns of a changed or removed document is dropped or rechecked where the
        hits are read from the store (index/hybrid.py)."""
        generation = self._store.generation()
        with self._lock:
            built = self._built
            if built is not None and built.generation == generation:
                return built
            if built is not None and len(built.ids) >= self._background_above:
                self._build_in_background(generation)
                return built
            self._built = None  # let the old one go before building the next
            self._built = self._load(generation) or self._build(generation)
            return self._built

    def wait_for_build(self, timeout: float | None = None) -> None:
        """Until a background build (if one runs) is done."""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)

    def _build_in_background(self, generation: str) -> None:
        """Start building `generation`'s index unless a build is running (the caller holds
        the lock); when it ends, a newer generation is built by the next query."""
        if self._builder is not None and self._builder.is_alive():
            return

        def run() -> None:
            try:
                fresh = self._load(generation) or self._build(generation)
            except Exception:  # the previous index keeps serving; the next query retries
                log.exception("BM25 index build for generation %s failed", generation[:8])
                return
            with self._lock:
                self._built = fresh

        self._builder = threading.Thread(target=run, name="bm25-build", daemon=True)
        self._builder.start()

    def _mask(self, built: _Built, where: Where | None) -> np.ndarray | None:
        if not where:
            return None
        key = json.dumps(where, sort_keys=True)
        with self._lock:
            mask = built.masks.get(key)
            if mask is None:
                mask = built.table.mask(where)
                built.masks[key] = mask
                if len(built.masks) > _MASKS_KEPT:
                    built.masks.popitem(last=False)
            else:
                built.masks.move_to_end(key)
            return mask

    def _build(self, generation: str) -> _Built:
        """Read the store a page at a time: only a page of text is held at once."""
        ids: list[str] = []
        bm25 = BM25Builder()
        table = ChunkTableBuilder()
        for page_ids, texts, metadatas in self._store.chunk_pages():
            ids.extend(page_ids)
            bm25.add(
                self._tokenize(_indexed_text(t, md, context=self._context))
                for t, md in zip(texts, metadatas, strict=True)
            )
            table.add(metadatas)
        built = _Built(generation, ids, table.build(), bm25.build(), OrderedDict())
        _return_freed_memory()
        log.info("BM25 index built over %d chunks (generation %s)", len(ids), generation[:8])
        self._save(built)
        return built

    def _save(self, built: _Built) -> None:
        """Save for the next process, as a whole folder swapped in: each save in a folder of
        its own, its `generation` file naming the save, so processes saving or loading at the
        same time never mix two saves. A failed save costs that process nothing."""
        if self._folder is None or not built.ids:
            return
        tmp = self._folder.with_name(f"{self._folder.name}.tmp-{uuid.uuid4().hex}")
        for left in self._folder.parent.glob(f"{self._folder.name}.tmp-*"):
            with contextlib.suppress(OSError):  # a killed process's, or one being written
                if time.time() - left.stat().st_mtime > _LEFT_BEHIND_SECONDS:
                    shutil.rmtree(left)
        try:
            tmp.mkdir(parents=True)
            built.bm25.save(tmp / "bm25")
            built.table.save(tmp)
            (tmp / "ids.json").write_text(json.dumps(built.ids), encoding="utf-8")
            label = f"{self._stamp(built.generation)}\n{tmp.name}"
            (tmp / "generation").write_text(label, encoding="utf-8")
            shutil.rmtree(self._folder, ignore_errors=True)
            tmp.rename(self._folder)
        except OSError as exc:  # another process swapped its save in first, or a full disk
            log.info("BM25 index not saved to %s: %s", self._folder, exc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _stamp(self, generation: str) -> str:
        """What the saved index records: its format, the store generation, and whether it
        holds context lines (an index saved any other way is rebuilt)."""
        stamp = f"{_FORMAT};{generation}"
        return f"{stamp};context" if self._context else stamp

    def _label(self) -> list[str]:
        if self._folder is None:
            return []
        try:
            return (self._folder / "generation").read_text(encoding="utf-8").split("\n")
        except OSError:
            return []

    def _load(self, generation: str) -> _Built | None:
        """The saved index of this generation, if there is one. Its label is read before
        and after: if another process swapped a save in meanwhile, nothing read is used."""
        label = self._label()
        if self._folder is None or not label or label[0] != self._stamp(generation):
            return None
        try:
            ids = json.loads((self._folder / "ids.json").read_text(encoding="utf-8"))
            table = ChunkTable.load(self._folder)
            bm25 = BM25Matrix.load(self._folder / "bm25")
        except (OSError, ValueError, KeyError) as exc:
            log.warning("BM25 index at %s unreadable (%s): rebuilding", self._folder, exc)
            return None
        if self._label() != label:
            return None
        if not len(ids) == len(table) == bm25.n_rows:
            log.warning("BM25 index at %s is inconsistent: rebuilding", self._folder)
            return None
        return _Built(generation, ids, table, bm25, OrderedDict())


def _return_freed_memory() -> None:
    """Give the pages freed by a build back to the system. The pages of text and tokens a
    build goes through are freed, but glibc keeps most of them in the process: 1.2 of the
    1.9 GB an API worker held after building over 1M chunks (evals/README.md, "Growth")."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def chunk_context(path: str, department: str, doc_type: str) -> str:
    """The short line a chunk can be keyword-indexed with (KeywordIndex's context_line) and
    embedded with (ChunkingOptions.context_line), both off by default, naming where it
    comes from:
    its file name in readable form, department and type
    (`finance/northbridge-2026-q1.pdf` -> `northbridge 2026 q1 | finance | report`). The
    stored and cited chunk text stays without it. Built from fields every chunk's metadata
    holds, so ingest (embedding) and this index (BM25) make the same line."""
    name = PurePosixPath(path).name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    readable = " ".join(re.sub(r"[_\-.]+", " ", stem).split()) or name
    return " | ".join(part for part in (readable, department, doc_type) if part)


def _indexed_text(text: str, md: dict[str, Any], *, context: bool) -> str:
    """What BM25 sees of a chunk: its title and section too, like the embedding, and with
    `context` its `chunk_context` line."""
    head = f"{md.get('title', '')}\n{md.get('section', '')}\n{text}"
    if not context:
        return head
    line = chunk_context(
        str(md.get("path", "")), str(md.get("department", "")), str(md.get("doc_type", ""))
    )
    return f"{line}\n{head}"
