"""Okapi BM25 (Lucene's variant) as one sparse matrix of precomputed weights, built page by page.

A store of a million chunks does not fit the usual way of building BM25 (every chunk's tokens
held as lists of strings, then converted): that peaked at 12 GB in the growth benchmark. Here a
page of tokenized chunks becomes (chunk, term, count) triples of 32-bit integers at once, and
only those are kept; the weights are computed once every page is in. Scores are the same as
bm25s's `lucene` method (k1 1.5, b 0.75): a term's weight in a chunk is
idf * tf / (tf + k1 * (1 - b + b * length / mean length)), idf = ln(1 + (N - df + 0.5) /
(df + 0.5)), and a query scores the sum of its terms' weights, a repeated term counting again.

Saved as plain `.npy` files, which a loading process maps rather than reads: workers on one
host share the pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

K1 = 1.5
B = 0.75


@dataclass(frozen=True)
class BM25Matrix:
    """Term t's weights are `weights[starts[t]:starts[t + 1]]`, for chunks `rows[...]` (in
    chunk order)."""

    vocabulary: dict[str, int]
    weights: np.ndarray  # float32
    rows: np.ndarray  # int32
    starts: np.ndarray  # int64, one more than the vocabulary
    n_rows: int

    def scores(self, tokens: Sequence[str]) -> np.ndarray:
        """Every chunk's score for a tokenized query (zero where no term matches)."""
        terms = [self.vocabulary[t] for t in tokens if t in self.vocabulary]
        if not terms:
            return np.zeros(self.n_rows)
        spans = [slice(self.starts[t], self.starts[t + 1]) for t in terms]
        rows = np.concatenate([self.rows[s] for s in spans])
        weights = np.concatenate([self.weights[s] for s in spans])
        return np.bincount(rows, weights=weights, minlength=self.n_rows)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        words = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        (folder / "vocabulary.json").write_text(json.dumps(words), encoding="utf-8")
        for name in ("weights", "rows", "starts"):
            np.save(folder / f"{name}.npy", getattr(self, name), allow_pickle=False)
        (folder / "rows.json").write_text(json.dumps({"n_rows": self.n_rows}), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> BM25Matrix:
        words = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
        arrays = {
            name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in ("weights", "rows", "starts")
        }
        n_rows = int(json.loads((folder / "rows.json").read_text(encoding="utf-8"))["n_rows"])
        if len(arrays["starts"]) != len(words) + 1:
            raise ValueError("BM25 vocabulary and term offsets disagree")
        return cls({w: i for i, w in enumerate(words)}, n_rows=n_rows, **arrays)


class BM25Builder:
    """Takes tokenized chunks a page at a time, in row order; `build()` once at the end."""

    def __init__(self, *, k1: float = K1, b: float = B) -> None:
        self._k1 = k1
        self._b = b
        self._vocabulary: dict[str, int] = {}
        self._rows: list[np.ndarray] = []
        self._terms: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []
        self._n_rows = 0

    def add(self, page: Iterable[Sequence[str]]) -> None:
        vocabulary = self._vocabulary
        ids: list[int] = []
        lengths: list[int] = []
        for tokens in page:
            ids.extend(vocabulary.setdefault(t, len(vocabulary)) for t in tokens)
            lengths.append(len(tokens))
        if not lengths:
            return
        local = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        pairs = (local << 32) | np.asarray(ids, dtype=np.int64)  # (chunk, term), one int
        keys, counts = np.unique(pairs, return_counts=True)
        self._rows.append(((keys >> 32) + self._n_rows).astype(np.int32))
        self._terms.append((keys & 0xFFFFFFFF).astype(np.int32))
        self._counts.append(counts.astype(np.float32))
        self._lengths.append(np.asarray(lengths, dtype=np.float32))
        self._n_rows += len(lengths)

    def build(self) -> BM25Matrix:
        """The weights, grouped by term. Memory peaks at about five 4-byte arrays of one entry
        per distinct (chunk, term) pair: the triples, the weights, and the regrouped copy."""
        from scipy.sparse import coo_matrix

        n_terms = len(self._vocabulary)
        rows = _concat(self._rows, np.int32)
        terms = _concat(self._terms, np.int32)
        weights = _concat(self._counts, np.float32)  # the counts, weighted in place below
        lengths = _concat(self._lengths, np.float32)
        self._rows, self._terms, self._counts, self._lengths = [], [], [], []
        df = np.bincount(terms, minlength=n_terms)
        idf = np.log1p((self._n_rows - df + 0.5) / (df + 0.5)).astype(np.float32)
        mean = float(lengths.mean()) if len(lengths) and lengths.mean() > 0 else 1.0
        norm = (self._k1 * ((1 - self._b) + self._b * lengths / mean)).astype(np.float32)
        denominator = norm[rows]
        denominator += weights
        weights /= denominator
        del denominator
        weights *= idf[terms]
        # Regroup by term (a counting sort: rows stay ascending within a term).
        by_term = coo_matrix(
            (weights, (terms, rows)), shape=(n_terms, self._n_rows), copy=False
        ).tocsr()
        del weights, rows, terms
        return BM25Matrix(
            vocabulary=self._vocabulary,
            weights=by_term.data.astype(np.float32, copy=False),
            rows=by_term.indices.astype(np.int32, copy=False),
            starts=by_term.indptr.astype(np.int64, copy=False),
            n_rows=self._n_rows,
        )


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
