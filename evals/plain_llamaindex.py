"""The plain LlamaIndex pipeline as a system under test: `kb eval run --llamaindex
evals.plain_llamaindex:engine`, which `make eval` runs beside our assistant as the baseline.

It is what a spoke gets from LlamaIndex's defaults over the same folder (evals/benchkit.py
`build_llama_baseline`, the pipeline the retrieval benchmark compares with): pypdf pages, other
files through SimpleDirectoryReader, SentenceSplitter(512, 20), the same packaged embedding
model, Chroma, the 5 nearest chunks. There is no LLM here (none would run offline without our
own model), so the answer is the nearest chunk's text: a retrieval baseline that shows what
our assembly, shapes, checks and refusals add. It never refuses and gives no stale warnings,
and the evaluation leaves out what it cannot supply.

The folder is `KB_CORPUS_DIR` (default `corpus`); the index is built in a temporary folder each
time the factory is called (about a minute for corpus/ on 2 cores) and removed at exit.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from api.settings import Settings
from evals.benchkit import build_llama_baseline
from index.embedding import packaged_model_path

TOP_K = 5


def engine() -> Any:
    """The query engine over `KB_CORPUS_DIR`: LlamaIndex's `CustomQueryEngine`."""
    from llama_index.core.base.response.schema import Response
    from llama_index.core.query_engine import CustomQueryEngine
    from llama_index.core.retrievers import BaseRetriever

    class NearestChunkEngine(CustomQueryEngine):
        """The 5 nearest chunks as sources, the nearest one's text as the answer."""

        retriever: BaseRetriever

        def custom_query(self, query_str: str) -> Response:
            nodes = self.retriever.retrieve(query_str)
            text = nodes[0].node.get_content() if nodes else ""
            return Response(response=text, source_nodes=nodes)

    settings = Settings()
    root = settings.corpus_dir
    if not root.is_dir():
        raise FileNotFoundError(f"KB_CORPUS_DIR={root} is not a folder: the baseline indexes it")
    workdir = Path(tempfile.mkdtemp(prefix="kb-plain-llamaindex-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    model = settings.embedding_model_path or packaged_model_path()
    built = build_llama_baseline(model, [root], workdir / "chroma")
    return NearestChunkEngine(retriever=built.index.as_retriever(similarity_top_k=TOP_K))
