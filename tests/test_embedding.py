"""The answer-side embedding cache: the same vectors as the model, fewer model calls, bounded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from pydantic import ValidationError

from api.settings import Settings
from index.embedding import CachedEmbedder, SentenceTransformerEmbedder, query_backend
from index.errors import ConfigurationError


class CountingEmbedder:
    """Deterministic vectors that tell texts apart, and a record of what was embedded."""

    name = "counting"
    dimension = 4
    max_tokens = 256

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.append(list(texts))
        rows = [[len(t), sum(map(ord, t)) % 97, t.count(" "), 1.0] for t in texts]
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), 4)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]


def test_only_unseen_texts_reach_the_model_once_each() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, max_entries=10)
    first = cached.embed(["a b", "c", "a b"])
    second = cached.embed(["c", "d e f", "a b"])
    assert inner.seen == [["a b", "c"], ["d e f"]]
    np.testing.assert_array_equal(first, inner.embed(["a b", "c", "a b"]))
    np.testing.assert_array_equal(second, inner.embed(["c", "d e f", "a b"]))


def test_least_recently_used_texts_go_first() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, max_entries=2)
    cached.embed(["one", "two"])
    cached.embed(["one"])  # now "two" is the oldest
    cached.embed(["three"])
    inner.seen.clear()
    cached.embed(["one", "two", "three"])
    assert inner.seen == [["two"]]


def test_callers_cannot_change_what_is_remembered() -> None:
    cached = CachedEmbedder(CountingEmbedder())
    vectors = cached.embed(["x y"])
    vectors[0, 0] = 42.0
    assert cached.embed(["x y"])[0, 0] != 42.0


def test_zero_entries_turns_the_cache_off() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, max_entries=0)
    cached.embed(["a"])
    cached.embed(["a"])
    assert inner.seen == [["a"], ["a"]]
    assert cached.embed([]).shape[0] == 0


def test_the_real_model_gives_the_same_vectors_through_the_cache(
    embedder: SentenceTransformerEmbedder,
) -> None:
    texts = ["Submit the AI-01 form.", "Triage takes 10 working days.", "Submit the AI-01 form."]
    cached = CachedEmbedder(embedder)
    cached.embed(texts[:1])
    np.testing.assert_allclose(cached.embed(texts), embedder.embed(texts), atol=1e-6)
    assert (cached.name, cached.dimension, cached.max_tokens) == (
        embedder.name,
        embedder.dimension,
        embedder.max_tokens,
    )


def test_the_service_embeds_queries_with_the_fastest_backend_of_the_stores_vectors() -> None:
    assert query_backend("torch") == "onnx"  # the same vectors, a query in half the time
    assert query_backend("onnx") == "onnx"
    assert query_backend("onnx-int8") == "onnx-int8"  # other vectors: only its own family
    assert query_backend("torch", "torch") == "torch"  # named: kept
    with pytest.raises(ConfigurationError, match="KB_SERVE_EMBED_BACKEND=onnx-int8"):
        query_backend("torch", "onnx-int8")  # would search float32 vectors with int8 ones
    with pytest.raises(ValidationError, match="KB_SERVE_EMBED_BACKEND must be"):
        Settings(_env_file=None, serve_embed_backend="tensorflow")
