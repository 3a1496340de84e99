"""The ONNX Runtime backend: torch's vectors and token counts from an export made offline,
once per model; and the setting that picks a backend. Real model, real exports."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from api.assembly import build_embedder, embedder_config
from api.settings import Settings
from index.embedding import (
    EmbedderConfig,
    SentenceTransformerEmbedder,
    make_embedder,
    packaged_model_path,
)
from index.errors import ConfigurationError
from index.onnx_embedding import (
    INT8_FILE,
    MODEL_FILE,
    OnnxEmbedder,
    ensure_exported,
    fingerprint,
    read_pipeline,
)

# Where scripts/install.sh exports the packaged model (KB_EMBED_ONNX_DIR's default, from the
# repository root); a test run without it exports there once.
INSTALLED = Path(__file__).parents[1] / EmbedderConfig.onnx_dir

CORPUS_TEXT = (Path(__file__).parents[1] / "corpus" / "coe" / "ai-use-policy.md").read_text(
    encoding="utf-8"
)
TEXTS = [
    "",
    " ",
    "\n\t  \n",
    "a",
    "?",
    "How do we deploy document processing?",
    "DocuSift's price per page is $0.04 (EUR 0.037) from 2026-01-01.",
    "Submit the AI-01 form; triage takes 10 working days.",
    "UPPER CASE and lower case and MiXeD CaSe",
    "Ünïcödé façade — naïve café, 東京の会議, emoji 🙂🚀, zero\u200bwidth",
    "[CLS] [SEP] [PAD] [MASK] tokens written as text",
    "word " * 400,  # truncated at the window
    CORPUS_TEXT[:3000],  # a real document, longer than the window
    CORPUS_TEXT[500:1400],
]


@pytest.fixture(scope="module")
def onnx() -> OnnxEmbedder:
    model = OnnxEmbedder(cache_dir=INSTALLED)
    model.embed(["warm up"])
    return model


@pytest.fixture(scope="module")
def onnx_int8() -> OnnxEmbedder:
    model = OnnxEmbedder(cache_dir=INSTALLED, quantized=True)
    model.embed(["warm up"])
    return model


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def test_float32_vectors_are_torchs(
    embedder: SentenceTransformerEmbedder, onnx: OnnxEmbedder
) -> None:
    expected = embedder.embed(TEXTS)
    found = onnx.embed(TEXTS)
    assert found.shape == expected.shape == (len(TEXTS), 384)
    assert found.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(found, axis=1), 1.0, atol=1e-5)
    assert cosines(found, expected).min() >= 0.999
    # one at a time, padding and batch neighbours change nothing
    alone = np.concatenate([onnx.embed([t]) for t in TEXTS])
    assert cosines(alone, found).min() >= 0.9999


def test_int8_vectors_are_close_to_torchs(
    embedder: SentenceTransformerEmbedder, onnx_int8: OnnxEmbedder
) -> None:
    """Close, not equal: the floor is the measured worst case (0.976, for whitespace-only
    text; evals/README.md, "Embedding backends") less a margin."""
    found = cosines(onnx_int8.embed(TEXTS), embedder.embed(TEXTS))
    assert found.min() >= 0.96
    assert found.mean() >= 0.98


def test_token_counts_are_torchs(embedder: SentenceTransformerEmbedder, onnx: OnnxEmbedder) -> None:
    counts = onnx.count_tokens(TEXTS)
    assert counts == embedder.count_tokens(TEXTS)
    assert max(counts) > onnx.max_tokens  # a text past the window is counted whole
    assert onnx.count_tokens([]) == []


def test_what_the_backends_declare(
    embedder: SentenceTransformerEmbedder, onnx: OnnxEmbedder, onnx_int8: OnnxEmbedder
) -> None:
    assert (onnx.dimension, onnx.max_tokens) == (embedder.dimension, embedder.max_tokens)
    assert (onnx_int8.dimension, onnx_int8.max_tokens) == (embedder.dimension, embedder.max_tokens)
    assert onnx.name == embedder.name  # the same vectors: a store serves either backend
    assert onnx_int8.name != embedder.name  # other vectors: switching re-embeds the store
    assert onnx.embed([]).shape == (0, 384)


@pytest.mark.slow
def test_the_export_is_made_offline_once_per_model(tmp_path: Path) -> None:
    """Exports under the network guard (conftest.py), into an empty cache: made, then found;
    a model whose files changed gets an export of its own."""
    model_dir = packaged_model_path()
    cache = tmp_path / "onnx"
    first = ensure_exported(model_dir, cache, quantized=True)
    assert first.made
    assert first.path == cache / fingerprint(model_dir) / INT8_FILE
    made_at = {p.name: p.stat().st_mtime_ns for p in first.path.parent.glob("*.onnx")}
    assert set(made_at) == {MODEL_FILE, INT8_FILE}

    again = OnnxEmbedder(cache_dir=cache, quantized=True)
    again.embed(["loaded from the cache"])
    assert again.exported is not None
    assert not again.exported.made
    assert {p.name: p.stat().st_mtime_ns for p in first.path.parent.glob("*.onnx")} == made_at
    assert not ensure_exported(model_dir, cache).made

    changed = changed_copy(model_dir, tmp_path / "changed")
    assert fingerprint(changed) != fingerprint(model_dir)
    redone = ensure_exported(changed, cache)
    assert redone.made
    assert redone.path.parent != first.path.parent
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [fingerprint(model_dir), fingerprint(changed)]
    )


def changed_copy(model_dir: Path, target: Path) -> Path:
    """The model folder, linked file by file, with a config.json that differs in one key."""
    target.mkdir()
    for path in model_dir.iterdir():
        if path.name != "config.json":
            (target / path.name).symlink_to(path)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    config["kb_test_marker"] = "changed"
    (target / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return target


def test_an_unknown_backend_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="KB_EMBED_BACKEND must be one of torch, onnx"):
        Settings(embed_backend="tensorflow", _env_file=None)
    monkeypatch.setenv("KB_EMBED_BACKEND", "gpu")
    with pytest.raises(ValidationError, match="KB_EMBED_BACKEND"):
        Settings(_env_file=None)
    with pytest.raises(ConfigurationError, match="KB_EMBED_BACKEND"):
        make_embedder(EmbedderConfig(backend="gpu"))


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.startswith("KB_"):
            monkeypatch.delenv(name)
    return Settings(_env_file=None)


def test_the_settings_pick_the_backend(defaults: Settings) -> None:
    assert embedder_config(defaults) == EmbedderConfig()  # each default in one place
    built = {
        backend: build_embedder(defaults.model_copy(update={"embed_backend": backend}))
        for backend in ("torch", "onnx", "onnx-int8")
    }
    assert isinstance(built["torch"], SentenceTransformerEmbedder)
    assert isinstance(built["onnx"], OnnxEmbedder)
    assert isinstance(built["onnx-int8"], OnnxEmbedder)
    assert built["onnx-int8"].name.endswith("ONNX int8")
    assert built["onnx"].exported is None  # building loads nothing


def test_a_missing_model_folder_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="KB_EMBEDDING_MODEL_PATH"):
        OnnxEmbedder(tmp_path / "absent", cache_dir=tmp_path).embed(["x"])


def test_a_pipeline_it_would_embed_differently_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_Pooling").mkdir()
    modules = [
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    pooling = {"word_embedding_dimension": 384, "pooling_mode_cls_token": True}
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling), encoding="utf-8")
    (tmp_path / "sentence_bert_config.json").write_text('{"max_seq_length": 256}')
    with pytest.raises(ConfigurationError, match="mean only"):
        read_pipeline(tmp_path)
    assert read_pipeline(packaged_model_path()).max_tokens == 256
