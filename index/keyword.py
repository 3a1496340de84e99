"""BM25 keyword search, derived from the chunks collection.

Local Chroma has no sparse index, so this one is built from the collection's text and kept
beside the store (`<data_dir>/bm25/<collection>/`). It records the store generation it was
built from; every search first compares that with the store's current generation (one cheap
call) and rebuilds when another process (or this one) changed the collection. Filters and
access control are applied as a mask over the corpus *before* ranking, with the same `where`
clause the dense path uses, so the top-k is drawn only from allowed chunks.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from index.filters import Where, matches
from index.store import ChromaStore

log = logging.getLogger("kb.index")

_TOKEN = re.compile(r"\d+(?:[.,]\d+)+%?|\w+", re.UNICODE)
_MASKS_KEPT = 64


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
    metadatas: list[dict[str, Any]]
    bm25: Any
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
    ) -> None:
        self._store = store
        self._folder = folder
        self._tokenize = tokenizer
        # Index each chunk with its `chunk_context` line; off by default (evals/README.md,
        # "Context in every chunk").
        self._context = context_line
        self._built: _Built | None = None
        self._lock = threading.Lock()

    def search(
        self, query: str, k: int, where: Where | None
    ) -> list[tuple[str, float, dict[str, Any]]]:
        """Top-k (chunk id, BM25 score, metadata) among chunks matching `where`, best first;
        zero scores left out. The metadata is the index's own copy: read it, do not change it."""
        built = self.current()
        tokens = self._tokenize(query)
        if not built.ids or not tokens or k <= 0:
            return []
        scores = built.bm25.get_scores(tokens)
        mask = self._mask(built, where)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(built.ids[i], float(scores[i]), built.metadatas[i]) for i in top if scores[i] > 0]

    def metadata(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The index's copy of the given chunks' metadata, by id; ids it does not hold (a
        chunk written after its generation was read) are left out. Read it, do not change it."""
        built = self.current()
        with self._lock:
            if not built.positions and built.ids:
                built.positions = {cid: i for i, cid in enumerate(built.ids)}
        rows = ((cid, built.positions.get(cid)) for cid in ids)
        return {cid: built.metadatas[i] for cid, i in rows if i is not None}

    def allowed_share(self, where: Where | None) -> float:
        """The share of all chunks that `where` admits (1.0 without a clause)."""
        built = self.current()
        mask = self._mask(built, where)
        if mask is None or not len(mask):
            return 1.0
        return float(mask.mean())

    def current(self) -> _Built:
        generation = self._store.generation()
        with self._lock:
            if self._built is None or self._built.generation != generation:
                self._built = self._load(generation) or self._build(generation)
            return self._built

    def _mask(self, built: _Built, where: Where | None) -> np.ndarray | None:
        if not where:
            return None
        key = json.dumps(where, sort_keys=True)
        with self._lock:
            mask = built.masks.get(key)
            if mask is None:
                mask = np.fromiter((matches(where, md) for md in built.metadatas), dtype=bool)
                built.masks[key] = mask
                if len(built.masks) > _MASKS_KEPT:
                    built.masks.popitem(last=False)
            else:
                built.masks.move_to_end(key)
            return mask

    def _build(self, generation: str) -> _Built:
        import bm25s

        ids, texts, metadatas = self._store.all_chunks()
        corpus = [
            self._tokenize(_indexed_text(t, md, context=self._context))
            for t, md in zip(texts, metadatas, strict=True)
        ]
        bm25 = bm25s.BM25()
        if ids:
            bm25.index(corpus, show_progress=False)
        built = _Built(generation, ids, metadatas, bm25, OrderedDict())
        log.info("BM25 index built over %d chunks (generation %s)", len(ids), generation[:8])
        self._save(built)
        return built

    def _save(self, built: _Built) -> None:
        if self._folder is None or not built.ids:
            return
        tmp = self._folder.with_name(self._folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        built.bm25.save(str(tmp / "bm25"))
        (tmp / "chunks.json").write_text(
            json.dumps({"ids": built.ids, "metadatas": built.metadatas}), encoding="utf-8"
        )
        (tmp / "generation").write_text(self._stamp(built.generation), encoding="utf-8")
        shutil.rmtree(self._folder, ignore_errors=True)
        tmp.rename(self._folder)

    def _stamp(self, generation: str) -> str:
        """What the saved index records: the store generation, and whether it holds context
        lines (an index saved the other way is rebuilt)."""
        return f"{generation};context" if self._context else generation

    def _load(self, generation: str) -> _Built | None:
        if self._folder is None or not (self._folder / "generation").exists():
            return None
        if (self._folder / "generation").read_text(encoding="utf-8") != self._stamp(generation):
            return None
        import bm25s

        try:
            data = json.loads((self._folder / "chunks.json").read_text(encoding="utf-8"))
            bm25 = bm25s.BM25.load(str(self._folder / "bm25"))
        except (OSError, ValueError) as exc:
            log.warning("BM25 index at %s unreadable (%s): rebuilding", self._folder, exc)
            return None
        return _Built(generation, data["ids"], data["metadatas"], bm25, OrderedDict())


def chunk_context(path: str, department: str, doc_type: str) -> str:
    """The short line a chunk can be embedded and keyword-indexed with (both off by default:
    ChunkingOptions.context_line, KeywordIndex's context_line), naming where it comes from:
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
