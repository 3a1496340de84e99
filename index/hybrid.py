"""The retriever every consumer uses: dense (Chroma) and keyword (BM25) candidates under one
`where` clause, fused by weighted reciprocal rank, near-duplicates collapsed (the fresher copy
kept), and, on request, each hit's neighbouring chunks attached as context (small-to-big) and
facet counts over the candidates' documents (index/facets.py)."""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from index.embedding import Embedder
from index.errors import InvalidRequestError
from index.facets import FACET_NAMES, FacetName, Facets, count_facets, pool_documents
from index.filters import ANONYMOUS, Principal, SearchFilters, Where, build_where, matches
from index.hits import Hit, hit_from_chroma
from index.keyword import KeywordIndex
from index.records import chunk_id, version_digest
from index.store import ChromaStore

log = logging.getLogger("kb.index")

Mode = Literal["hybrid", "dense", "keyword"]
_WORD = re.compile(r"\w+")
# chunk id, text (None: not read yet), metadata, cosine similarity
DenseRow = tuple[str, str | None, dict[str, Any], float]
KeywordRow = tuple[str, float, dict[str, Any]]  # chunk id, BM25 score, metadata


@dataclass(frozen=True)
class RetrievalOptions:
    """rrf_k and duplicate_similarity: the measurements behind them are in evals/README.md,
    "Constants and the measurements behind them" (`python -m evals.sweep_constants`)."""

    mode: Mode = "hybrid"
    dense_weight: float = 1.0
    keyword_weight: float = 1.0
    # Reciprocal rank fusion constant. Golden hybrid hit@5 is 0.983 at 1, 2 and 5 and MRR@10
    # within 0.02 from 1 to 60; contoso_hr's MRR is best at 1-2 (0.868 against 0.851) and
    # falls from 10 up. Differences of one to three questions: not enough to move it.
    rrf_k: int = 5
    candidates: int = 50  # per retriever, before fusion
    # Word-shingle Jaccard at or above which two chunks are one (the better-ranked kept). No
    # chunk pair of any top 10 of the golden set or contoso_hr comes near it (the closest is
    # 0.53): a guard against copies of one text, not tuned.
    duplicate_similarity: float = 0.85
    max_k: int = 100
    # The most nearest chunks read unfiltered to find the allowed ones among them (see
    # `_dense`); a clause admitting too few for that goes to Chroma's filtered search.
    widened_limit: int = 3000


@dataclass(frozen=True)
class Retrieval:
    """One search: its hits, the documents of the candidate pool they were ranked from (doc
    id -> facet fields, best-ranked first), and the facet counts over those documents."""

    hits: list[Hit]
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    facets: Facets = field(default_factory=Facets)


class HybridRetriever:
    def __init__(
        self,
        store: ChromaStore,
        embedder: Embedder,
        keyword: KeywordIndex,
        options: RetrievalOptions | None = None,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._keyword = keyword
        self.options = options or RetrievalOptions()

    def warm(self) -> None:
        """Load the model and build or load the keyword index now rather than on first use."""
        self._embedder.embed(["warm up"])
        self._keyword.current()

    def retrieve(
        self,
        query: str,
        k: int,
        *,
        today: dt.date,
        filters: SearchFilters | None = None,
        principal: Principal = ANONYMOUS,
        neighbors: int = 0,
    ) -> list[Hit]:
        """The k best chunks for `query` that `principal` may read and `filters` allow."""
        return self._run(query, k, today, filters, principal, neighbors, facets=None).hits

    def retrieve_with_facets(
        self,
        query: str,
        k: int,
        *,
        today: dt.date,
        filters: SearchFilters | None = None,
        principal: Principal = ANONYMOUS,
        neighbors: int = 0,
        facets: Sequence[FacetName] = FACET_NAMES,
    ) -> Retrieval:
        """`retrieve()`'s hits, with the distinct documents of the candidate pool they were
        ranked from and their counts per value of each facet in `facets`. The pool is what
        fusion ranks: the max(candidates, 2k) best chunks of each retriever (the nearest ones,
        and those sharing a query word), every one drawn under the same access and filter
        clause as the hits, so a document the principal may not read or the filters exclude
        is never counted. On a base smaller than the pool, that is every allowed document.
        No model or store call is added: the candidates already carry their metadata."""
        return self._run(query, k, today, filters, principal, neighbors, facets=facets)

    def _run(
        self,
        query: str,
        k: int,
        today: dt.date,
        filters: SearchFilters | None,
        principal: Principal,
        neighbors: int,
        facets: Sequence[FacetName] | None,
    ) -> Retrieval:
        if not query.strip():
            raise InvalidRequestError("query", "is empty: type what you are looking for")
        if not 1 <= k <= self.options.max_k:
            raise InvalidRequestError(
                "k", f"{k} is out of range: ask for 1 to {self.options.max_k} results"
            )
        where = build_where(filters or SearchFilters(), principal, today)
        n = max(self.options.candidates, k * 2)
        dense = self._dense(query, n, where) if self.options.mode != "keyword" else []
        keyword = self._keyword.search(query, n, where) if self.options.mode != "dense" else []
        ranked = self._one_version(self._fuse(dense, keyword))
        hits = self._materialize(ranked, dense, keyword, k, today, where)
        if neighbors > 0:
            hits = self._with_neighbors(hits, neighbors)
        if facets is None:
            return Retrieval(hits)
        documents = pool_documents(_pool(ranked, dense, keyword), where)
        return Retrieval(hits, documents, count_facets(documents.values(), facets))

    def _dense(self, query: str, n: int, where: Where | None) -> list[DenseRow]:
        """The n nearest allowed chunks. Chroma's filtered search costs time in proportion to
        what the clause admits (a department of a 100k-chunk store: 123 ms; of 1M: 0.9 s),
        while an unfiltered one grows slowly with k (k = 1,500 at 100k: 23 ms). So the
        nearest chunks are read unfiltered, as many as the admitted share says hold n allowed
        ones with room to spare (up to `widened_limit`), and the allowed ones taken in order:
        the same n a filtered search returns. If too few of them are allowed, `widened_limit`
        are read, and if that is still too few, the filtered search runs after all."""
        vector = self._embedder.embed([query])[0]
        if where:
            share = self._keyword.allowed_share(where)
            wide = math.ceil(n / share * 1.5) + 10 if share > 0 else 0
            limit = self.options.widened_limit
            # A query near chunks the clause excludes gets one more try at the limit first:
            # still far cheaper than the filtered search on a large store.
            for k in sorted({wide, limit}) if 0 < wide <= limit else ():
                nearest = self._store.nearest(vector, k, None)
                admitted = self._keyword.admitted([cid for cid, _ in nearest], where)
                maybe = [row for row in nearest if admitted.get(row[0], True)]  # unknown: read
                allowed = [row for row in self._with_metadata(maybe) if matches(where, row[2])]
                if len(allowed) >= n or len(nearest) < k:
                    return allowed[:n]
        return self._with_metadata(self._store.nearest(vector, n, where))

    def _with_metadata(self, nearest: list[tuple[str, float]]) -> list[DenseRow]:
        """The nearest chunks with their metadata, from the keyword index's copy (reading it
        from Chroma is most of a query's time); a chunk newer than that copy is read from the
        store, text and all. Texts are read later, for the hits only (`_materialize`)."""
        known = self._keyword.metadata([cid for cid, _ in nearest])
        fresh = self._store.get_chunks([cid for cid, _ in nearest if cid not in known])
        rows: list[DenseRow] = []
        for cid, similarity in nearest:
            if cid in known:
                rows.append((cid, None, known[cid], similarity))
            elif cid in fresh:  # else deleted since the query
                rows.append((cid, fresh[cid][0], fresh[cid][1], similarity))
        return rows

    def _one_version(self, ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """The candidates of one version per document. A sync writes a document's new chunks
        before it deletes the old ones (ingest/sync.py), so a search in between, or after a run
        killed in between and before the next, finds both versions: the registry's (the one
        being written) is kept, or, if it has none here, the best-ranked. The registry is read
        only for a document found in two versions."""
        versions: dict[str, list[str]] = {}
        for cid, _ in ranked:
            doc_id, digest = _version(cid)
            seen = versions.setdefault(doc_id, [])
            if digest not in seen:
                seen.append(digest)
        keep: dict[str, str] = {}
        for doc_id, digests in versions.items():
            if len(digests) > 1:
                record = self._store.document(doc_id)
                current = version_digest(record.content_hash) if record else None
                keep[doc_id] = current if current in digests else digests[0]
        if not keep:
            return ranked
        return [
            (cid, score)
            for cid, score in ranked
            if keep.get((version := _version(cid))[0], version[1]) == version[1]
        ]

    def _fuse(self, dense: list[DenseRow], keyword: list[KeywordRow]) -> list[tuple[str, float]]:
        """Weighted reciprocal rank fusion: (chunk id, score in 0..1), best first."""
        o = self.options
        dense_weight = o.dense_weight if dense else 0.0
        keyword_weight = o.keyword_weight if keyword else 0.0
        best = (dense_weight + keyword_weight) / (o.rrf_k + 1) or 1.0
        fused: dict[str, float] = {}
        for rank, (cid, *_rest) in enumerate(dense, start=1):
            fused[cid] = fused.get(cid, 0.0) + dense_weight / (o.rrf_k + rank)
        for rank, (cid, *_rest) in enumerate(keyword, start=1):
            fused[cid] = fused.get(cid, 0.0) + keyword_weight / (o.rrf_k + rank)
        ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
        return [(cid, score / best) for cid, score in ranked]

    def _materialize(
        self,
        ranked: list[tuple[str, float]],
        dense: list[DenseRow],
        keyword: list[KeywordRow],
        k: int,
        today: dt.date,
        where: Where | None,
    ) -> list[Hit]:
        """Hits in fused order, near-duplicates collapsed, until k are kept. Texts of
        keyword-only candidates are fetched a window at a time, only as far as needed; a
        window is finished even past k so that a current copy of a stale text can replace it."""
        rows = {cid: (text, md) for cid, text, md, _ in dense if text is not None}
        dense_scores = {cid: score for cid, _, _, score in dense}
        keyword_scores = {cid: score for cid, score, _ in keyword}
        kept = _Deduplicator(self.options.duplicate_similarity)
        window = max(2 * k, 10)
        for start in range(0, len(ranked), window):
            part = ranked[start : start + window]
            rows.update(self._store.get_chunks([cid for cid, _ in part if cid not in rows]))
            for cid, score in part:
                if cid not in rows:
                    continue  # deleted between the two reads
                text, md = rows[cid]
                if not matches(where, md):  # defence in depth: never return what is not allowed
                    log.error("chunk %s matched a query it is not allowed in; dropped", cid)
                    continue
                hit = hit_from_chroma(cid, text, md, today).with_(
                    score=round(score, 4),
                    dense_score=_round(dense_scores.get(cid)),
                    keyword_score=_round(keyword_scores.get(cid)),
                )
                kept.add(hit)
            if len(kept.hits()) >= k:  # the rest of a window can still swap in a current copy
                break
        return kept.hits()[:k]

    def surroundings(
        self, hits: Sequence[Hit], radius: int, today: dt.date
    ) -> dict[str, list[Hit]]:
        """For each hit (by chunk id), the chunks of its document version within `radius`
        positions of it, itself included, in document order: what context assembly reads to
        find the hit's section (one store read for all hits). The hits were already allowed
        for the principal, and a document's chunks share its access."""
        spans = {
            hit.chunk_id: [
                _sibling(hit, i)
                for i in range(max(0, hit.chunk_index - radius), hit.chunk_index + radius + 1)
            ]
            for hit in hits
        }
        rows = self._store.get_chunks(sorted({cid for ids in spans.values() for cid in ids}))
        return {
            key: [hit_from_chroma(cid, *rows[cid], today) for cid in ids if cid in rows]
            for key, ids in spans.items()
        }

    def _with_neighbors(self, hits: list[Hit], window: int) -> list[Hit]:
        wanted: list[str] = []
        for hit in hits:
            doc_id, digest, _ = hit.chunk_id.rsplit(":", 2)
            lo = max(0, hit.chunk_index - window)
            wanted += [chunk_id(doc_id, digest, i) for i in range(lo, hit.chunk_index + window + 1)]
        rows = self._store.get_chunks(sorted(set(wanted)))
        out: list[Hit] = []
        for hit in hits:
            doc_id, digest, _ = hit.chunk_id.rsplit(":", 2)
            lo = max(0, hit.chunk_index - window)
            parts = [
                rows[cid][0]
                for i in range(lo, hit.chunk_index + window + 1)
                if (cid := chunk_id(doc_id, digest, i)) in rows
            ]
            out.append(hit.with_(context=join_chunks(parts)))
        return out


def _version(cid: str) -> tuple[str, str]:
    """(doc id, content digest) of a chunk id (index.records.chunk_id); an id of another
    form is a version of its own."""
    parts = cid.rsplit(":", 2)
    return (parts[0], parts[1]) if len(parts) == 3 else (cid, "")


def _sibling(hit: Hit, index: int) -> str:
    """The id of chunk `index` of the hit's document version."""
    doc_id, digest, _ = hit.chunk_id.rsplit(":", 2)
    return chunk_id(doc_id, digest, index)


def _pool(
    ranked: list[tuple[str, float]], dense: list[DenseRow], keyword: list[KeywordRow]
) -> Iterator[dict[str, Any]]:
    """The metadata of every fused candidate, best-ranked first."""
    metadata = {cid: md for cid, _, md in keyword}
    metadata.update((cid, md) for cid, _, md, _ in dense)
    return (metadata[cid] for cid, _ in ranked)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    if len(words) < 3:
        return {tuple(words)}
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


class _Deduplicator:
    """Keeps the best-ranked of near-identical chunks; between a stale and a current copy of
    the same text, keeps the current one at the better rank."""

    def __init__(self, threshold: float) -> None:
        self._threshold = threshold
        self._kept: list[tuple[Hit, set[tuple[str, ...]]]] = []

    def add(self, hit: Hit) -> None:
        shingles = _shingles(hit.text)
        for i, (other, other_shingles) in enumerate(self._kept):
            union = len(shingles | other_shingles) or 1
            if len(shingles & other_shingles) / union >= self._threshold:
                if other.is_stale and not hit.is_stale:
                    self._kept[i] = (hit.with_(score=other.score), shingles)
                return
        self._kept.append((hit, shingles))

    def hits(self) -> list[Hit]:
        return [hit for hit, _ in self._kept]


def join_chunks(parts: list[str]) -> str:
    """Concatenate consecutive chunks, dropping the lines each repeats from the previous."""
    out: list[str] = []
    for part in parts:
        lines = part.splitlines()
        overlap = 0
        for size in range(min(len(lines), len(out)), 0, -1):
            if out[-size:] == lines[:size]:
                overlap = size
                break
        out.extend(lines[overlap:])
    return "\n".join(out)
