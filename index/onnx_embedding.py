"""The embedding model on ONNX Runtime: the same MiniLM and the same vectors as the torch
backend (index/embedding.py), loaded in a fraction of the time and twice as fast on a single
query, though slower than torch on large batches; or an int8 copy of it, faster at both, whose
vectors are close, not equal (evals/README.md, "Embedding backends", has the figures).

What it does, step by step, so that it matches sentence-transformers' pipeline for this model
(`modules.json`: Transformer -> Pooling -> Normalize):

- **Export, once.** The model folder's transformer (`config.json` and its weights) is exported
  with torch's TorchScript ONNX exporter into `cache_dir/<fingerprint>/model.onnx`; the int8
  backend adds `model-int8.onnx`, made from it by ONNX Runtime's dynamic quantization. The
  fingerprint hashes the files the export reads, so a changed model re-exports and an unchanged
  one never does. An export is written into a temporary folder (a temporary file for int8) and
  renamed into place: a killed export leaves nothing half-written, and two processes exporting
  at once both end with a complete copy. Torch and transformers are imported for the export
  only; nothing is fetched from a model hub (`local_files_only`). `scripts/install.sh` runs the
  export (`python -m index.onnx_embedding`), so a first query does not wait for it.
- **Tokenize** with the model's own fast tokenizer (`tokenizer.json`, through `tokenizers`,
  which transformers' fast tokenizer wraps), stripped and truncated to `max_seq_length` word
  pieces (`sentence_bert_config.json`: 256, the two special tokens included), padded to the
  longest text of the batch. Texts are sorted by length before batching, as sentence-transformers
  does, so a batch pads little. `count_tokens` is the same tokenizer with no special tokens and
  no truncation, as the torch backend counts.
- **Pool** by the mean over the attention mask (`1_Pooling/config.json`), then scale each vector
  to unit length. A model whose pipeline is anything else is refused with a ConfigurationError
  rather than embedded differently.

The float32 backend's name is the torch backend's: its vectors agree to float precision
(cosine >= 0.999 is tested, above 0.99999 measured), so a store ingested by either is
searched by either. The int8 backend's name differs, so switching to it or from it re-embeds the
stored documents (ingestion hashes the name into each document's content hash).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.embedding import BATCH_SIZE, EmbedderConfig, model_name, packaged_model_path
from index.environment import use_offline_environment
from index.errors import ConfigurationError

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

log = logging.getLogger("kb.index")

# Bump when the export changes what a cached file holds: every cache folder is then re-made.
EXPORT_VERSION = 1
# The opset of the TorchScript exporter's most used path; ONNX Runtime 1.16+ runs it.
OPSET = 17
MODEL_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


# -- the model folder ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pipeline:
    """What the model folder's sentence-transformers configuration asks of the embedding."""

    max_tokens: int  # word pieces in the window, special tokens included
    dimension: int
    lower_case: bool


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc


def read_pipeline(model_dir: Path) -> Pipeline:
    """Transformer -> mean Pooling (-> Normalize), or a ConfigurationError naming the file."""
    modules = _read_json(model_dir / "modules.json")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"}:
        raise ConfigurationError(
            f"{model_dir / 'modules.json'}: the ONNX backend embeds Transformer -> Pooling "
            f"(-> Normalize) models, not {' -> '.join(kinds)}: use KB_EMBED_BACKEND=torch"
        )
    pooling = _read_json(model_dir / modules[1]["path"] / "config.json")
    modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True)
    if modes != ["pooling_mode_mean_tokens"]:
        raise ConfigurationError(
            f"{model_dir / modules[1]['path']}: the ONNX backend pools by the mean only, not "
            f"{modes}: use KB_EMBED_BACKEND=torch"
        )
    config = _read_json(model_dir / "sentence_bert_config.json")
    if not config.get("max_seq_length"):
        raise ConfigurationError(
            f"{model_dir / 'sentence_bert_config.json'} declares no max_seq_length"
        )
    return Pipeline(
        max_tokens=int(config["max_seq_length"]),
        dimension=int(pooling["word_embedding_dimension"]),
        lower_case=bool(config.get("do_lower_case", False)),
    )


def source_files(model_dir: Path) -> list[Path]:
    """The files an export reads: the transformer's configuration and its weights."""
    weights = [model_dir / name for name in WEIGHT_FILES if (model_dir / name).is_file()]
    if not weights:
        raise ConfigurationError(f"{model_dir} holds no {' or '.join(WEIGHT_FILES)}")
    return [model_dir / "config.json", weights[0]]


def fingerprint(model_dir: Path) -> str:
    """A hash of the export's inputs (names and bytes) and of EXPORT_VERSION and OPSET."""
    digest = hashlib.sha256(f"onnx-export {EXPORT_VERSION} opset {OPSET}\n".encode())
    for path in source_files(model_dir):
        digest.update(f"{path.name}\n".encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


# -- the export -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    """An ONNX file ready to load, and whether this call had to make it."""

    path: Path
    made: bool


def ensure_exported(model_dir: Path, cache_dir: Path, *, quantized: bool = False) -> Exported:
    """The cached export of `model_dir` (int8 if `quantized`), made first if missing."""
    folder = cache_dir / fingerprint(model_dir)
    made = False
    if not (folder / MODEL_FILE).is_file():
        _export_folder(model_dir, folder)
        made = True
    if not quantized:
        return Exported(folder / MODEL_FILE, made)
    if not (folder / INT8_FILE).is_file():
        _quantize(folder / MODEL_FILE, folder / INT8_FILE)
        made = True
    return Exported(folder / INT8_FILE, made)


def _export_folder(model_dir: Path, folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting the embedding model %s to ONNX in %s (once)", model_dir, folder)
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    work.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users of the install
    try:
        try:
            export_onnx(model_dir, work / MODEL_FILE)
        except Exception as exc:  # torch's exporter raises many types; say what to do instead
            raise ConfigurationError(
                f"exporting the embedding model {model_dir} to ONNX failed ({exc}): "
                "use KB_EMBED_BACKEND=torch"
            ) from exc
        source = {"model_dir": str(model_dir), "files": [p.name for p in source_files(model_dir)]}
        (work / "source.json").write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")
        if folder.is_dir() and not (folder / MODEL_FILE).is_file():
            shutil.rmtree(folder)  # an export's folder that lost its model file
        try:
            work.rename(folder)
        except OSError:
            if not (folder / MODEL_FILE).is_file():  # not another process's finished export
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("ONNX export took %.1f s", time.perf_counter() - start)


def export_onnx(model_dir: Path, target: Path) -> None:
    """The transformer of `model_dir` as ONNX: (input_ids, attention_mask, token_type_ids) ->
    last_hidden_state, batch and sequence length dynamic."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # Eager attention: a traced graph keeps no data-dependent shortcut of the fused kernels'
    # mask handling, so padded batches come out right.
    model = AutoModel.from_pretrained(
        str(model_dir), attn_implementation="eager", local_files_only=True
    ).eval()

    class HiddenStates(torch.nn.Module):
        """Keyword arguments in, one tensor out: what the TorchScript exporter traces."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            named = dict(zip(INPUTS, inputs, strict=True))
            return self.model(**named).last_hidden_state

    sample = tuple(torch.ones((2, 8), dtype=torch.long) for _ in INPUTS)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python conditions on shapes
        torch.onnx.export(
            HiddenStates(),
            sample,
            str(target),
            input_names=list(INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,  # the dynamo exporter needs onnxscript, which nothing else here does
        )


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantization, weights per output channel: per tensor, MiniLM's vectors
    drop to cosine 0.85 of float32's at worst; per channel 0.988 (evals/README.md,
    "Embedding backends")."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("quantizing %s to int8 (once)", source)
    work = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        quantize_dynamic(source, work, weight_type=QuantType.QInt8, per_channel=True)
        work.replace(target)
    finally:
        work.unlink(missing_ok=True)


# -- the embedder ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    session: onnxruntime.InferenceSession
    inputs: tuple[str, ...]
    window: Tokenizer  # truncates to the window, pads to the batch's longest
    counter: Tokenizer  # neither
    pipeline: Pipeline


class OnnxEmbedder:
    """The Embedder protocol on ONNX Runtime: exported (or found in the cache) and loaded on
    first use, then shared by threads (an InferenceSession runs calls concurrently)."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        cache_dir: Path = EmbedderConfig.onnx_dir,
        quantized: bool = False,
        batch_size: int = BATCH_SIZE,
        threads: int | None = None,
    ) -> None:
        self._path = model_path
        self._cache_dir = cache_dir
        self._quantized = quantized
        self._batch_size = batch_size
        self._threads = threads
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()
        self.exported: Exported | None = None  # set on load: which file, and if it was made

    @property
    def model(self) -> _Loaded:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
            return self._loaded

    def _load(self) -> _Loaded:
        import onnxruntime as ort

        model_dir = Path(self._path or packaged_model_path())
        if not model_dir.is_dir():
            raise ConfigurationError(
                f"embedding model folder {model_dir} does not exist: fix KB_EMBEDDING_MODEL_PATH "
                "or leave it unset to use the packaged MiniLM"
            )
        pipeline = read_pipeline(model_dir)
        window, counter = _tokenizers(model_dir, pipeline.max_tokens)
        self.exported = ensure_exported(model_dir, self._cache_dir, quantized=self._quantized)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads or 0  # 0: ONNX Runtime's own choice
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(self.exported.path), options, providers=["CPUExecutionProvider"]
        )
        inputs = tuple(i.name for i in session.get_inputs())
        return _Loaded(session, inputs, window, counter, pipeline)

    @property
    def name(self) -> str:
        base = model_name(self._path)
        return f"{base}, ONNX int8" if self._quantized else base

    @property
    def dimension(self) -> int:
        return self.model.pipeline.dimension

    @property
    def max_tokens(self) -> int:
        return self.model.pipeline.max_tokens

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self.model
        vectors = np.zeros((len(texts), model.pipeline.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            vectors[rows] = _forward(model, [texts[i] for i in rows])
        return vectors

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.model.counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]


def _tokenizers(model_dir: Path, max_tokens: int) -> tuple[Tokenizer, Tokenizer]:
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ConfigurationError(
            f"{model_dir} has no tokenizer.json (a fast tokenizer), which the ONNX backend "
            "reads: use KB_EMBED_BACKEND=torch"
        )
    window, counter = Tokenizer.from_file(str(path)), Tokenizer.from_file(str(path))
    # tokenizer.json may carry settings of its own (MiniLM's: truncate and pad to 128)
    padding = window.padding or {"pad_id": 0, "pad_token": "[PAD]"}
    window.enable_truncation(max_tokens)
    window.enable_padding(pad_id=padding["pad_id"], pad_token=padding["pad_token"])
    counter.no_truncation()
    counter.no_padding()
    return window, counter


def _forward(model: _Loaded, texts: list[str]) -> np.ndarray:
    """One batch: tokens, the transformer, mean pooling over the mask, unit length."""
    if model.pipeline.lower_case:
        texts = [t.lower() for t in texts]
    encoded = model.window.encode_batch([t.strip() for t in texts])
    arrays = {
        "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
    }
    hidden = model.session.run(None, {name: arrays[name] for name in model.inputs})[0]
    mask = arrays["attention_mask"][..., None].astype(np.float32)
    pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m index.onnx_embedding [CACHE_DIR]`: export the packaged model (float32 and
    int8) into CACHE_DIR (default: models/onnx) unless already there. scripts/install.sh runs it."""
    args = list(sys.argv[1:] if argv is None else argv)
    cache_dir = Path(args[0]) if args else EmbedderConfig.onnx_dir
    use_offline_environment()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    model_dir = packaged_model_path()
    for quantized in (False, True):
        exported = ensure_exported(model_dir, cache_dir, quantized=quantized)
        print(f"{'made' if exported.made else 'found'} {exported.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
