"""The systems `kb eval run` can evaluate: our assistant (the default), any OpenAI-compatible
chat completions endpoint (`--endpoint`), and a LlamaIndex query engine made by a factory
(`--llamaindex module:factory`), each behind one small Protocol and picked by a registry.

A system answers a question with a `Reply`: the answer in our `Answer` shape, the documents it
drew on (if it says), and which capabilities it has. Metrics that read a capability a system
lacks are left out of the record (None), so the summary reports them as absent, never as 0:
retrieval (hit@k, MRR) without sources, faithfulness without our citation checker, the stale
warning metrics without warnings, contoso's citation match without pages. Other systems ask as
whoever their key or factory is, not as the questions' `principal_groups`.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import httpx
from pydantic import TypeAdapter

from api.assembly import build_answer_embedder, build_assistant, build_generator, build_retriever
from api.openai_schemas import SOURCES_HEADING
from api.settings import Settings
from assistant.service import Answer, Assistant, Citation, says_dont_know
from evals.bench_answers import conversation
from evals.bench_retrieval import HIT_AT
from evals.catalogue import Catalogue, foreign_answer
from evals.suite_data import SuiteQuestion
from evals.suite_metrics import score
from index.embedding import Embedder
from index.errors import InvalidRequestError
from index.filters import Principal
from index.records import DocumentRecord
from index.store import ChromaStore


class Capability(StrEnum):
    RETRIEVAL = "retrieval"  # the documents it drew on, best first
    SUPPORT = "support"  # sentence support measured by our citation checker
    STALE_WARNINGS = "stale_warnings"  # whether it warned that a cited source is stale
    PAGES = "pages"  # the pages of what it cites


# The record fields (evals/suite_metrics.py `score`) that need each capability.
NEEDS: dict[Capability, tuple[str, ...]] = {
    Capability.RETRIEVAL: (
        "retrieved",
        "first_rank",
        *(f"hit@{k}" for k in HIT_AT),
        "reciprocal_rank",
    ),
    Capability.SUPPORT: ("cited_sentences", "supported_sentences", "removed_sentences"),
    Capability.STALE_WARNINGS: ("warned", "stale_without_warning"),
    Capability.PAGES: ("citation_match",),
}
_CITATIONS = TypeAdapter(list[Citation])


@dataclass(frozen=True)
class Reply:
    answer: Answer
    retrieved: list[str] | None  # the document of each source it drew on, best first
    latency_ms: float
    supplies: frozenset[Capability]
    threshold: float = 0.0  # the citation checker's, when it supplies SUPPORT
    unmatched: list[str] = field(default_factory=list)  # sources naming no document of ours


class SystemUnderTest(Protocol):
    @property
    def label(self) -> str:
        """Which system answered, in every record."""
        ...

    @property
    def generator(self) -> str:
        """The summary's `generator`."""
        ...

    def describe(self) -> dict[str, Any]:
        """The summary's `configuration.system` (never a secret); resuming needs the same."""
        ...

    def answer(self, q: SuiteQuestion) -> Reply: ...


def record_of(
    system: SystemUnderTest, q: SuiteQuestion, reply: Reply, departments: dict[str, str]
) -> dict[str, Any]:
    """The question's record (evals/suite_metrics.py), without what the system cannot supply."""
    record = score(
        q, reply.answer, reply.retrieved or [], departments, reply.latency_ms, reply.threshold
    )
    for capability, fields in NEEDS.items():
        if capability not in reply.supplies:
            record.update(dict.fromkeys(fields))
    if Capability.SUPPORT not in reply.supplies:
        for citation in record["citations"]:
            citation["support"] = None
    record["system"] = system.label
    if reply.unmatched:
        record["unmatched_sources"] = reply.unmatched
    return record


# -- our assistant ----------------------------------------------------------------------------


def assemble(
    settings: Settings, store: ChromaStore, embedder: Embedder, generator: str | None
) -> Assistant:
    """The assistant as `kb ask` builds it, over this store, with this generator."""
    answering = build_answer_embedder(settings, embedder)
    retriever = build_retriever(settings, store, answering)
    retriever.warm()
    made = build_generator(settings, answering, generator)
    return build_assistant(settings, retriever, answering, made)


class AssistantSystem:
    """Our assistant, asked as each question's `principal_groups`, every metric measured."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self.generator = assistant.generator_name
        self.label = f"assistant:{self.generator}"

    def describe(self) -> dict[str, Any]:
        return {"kind": "assistant", "generator": self.generator}

    def answer(self, q: SuiteQuestion) -> Reply:
        principal = Principal.of(*q.principal_groups)
        history = conversation(self.assistant, q.history, principal)  # a follow-up's, first
        context = self.assistant.prepare(q.question, principal=principal, history=history)
        asked = time.perf_counter()
        answer = self.assistant.ask(q.question, principal=principal, history=history)
        latency = (time.perf_counter() - asked) * 1000
        retrieved = [h.doc_id for h in context.hits]
        threshold = self.assistant.options.check.threshold
        return Reply(answer, retrieved, latency, frozenset(Capability), threshold)


# -- an OpenAI-compatible endpoint ------------------------------------------------------------


class EndpointSystem:
    """`POST <url>/chat/completions` with the question as one user message. Our API's extension
    fields (`citations`, `refused`, `warnings`: api/openai_schemas.py) are read when present;
    otherwise documents are recognised by their ids or titles in the text, and a refusal by
    the assistant's own test (`says_dont_know`)."""

    def __init__(
        self,
        url: str,
        key: str | None,
        model: str | None,
        catalogue: Catalogue,
        timeout_s: float = 600.0,
    ) -> None:
        # Imported here: that module loads llama-index, which `kb eval compare` does not need.
        from api.llamaindex_surface import api_key_headers, checked

        self._checked = checked
        self._base = url.rstrip("/").removesuffix("/chat/completions")
        self._client = httpx.Client(headers=api_key_headers(key), timeout=timeout_s)
        self._key = hashlib.sha256(key.encode()).hexdigest()[:12] if key else None
        self._catalogue = catalogue
        self.model = model or self._served_model()
        self.label = f"endpoint:{self._base}"
        self.generator = f"endpoint:{self.model}"

    def _served_model(self) -> str:
        """The first model `GET <url>/models` lists, when none is named."""
        try:
            listed = self._checked(self._client.get(f"{self._base}/models")).json()
            return str(listed["data"][0]["id"])
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise InvalidRequestError(
                "--endpoint-model", f"none given, and GET {self._base}/models named none: {exc}"
            ) from exc

    def describe(self) -> dict[str, Any]:
        return {"kind": "endpoint", "url": self._base, "model": self.model, "key_sha256": self._key}

    def answer(self, q: SuiteQuestion) -> Reply:
        messages: list[dict[str, str]] = []
        for earlier in q.history:  # a follow-up: the conversation before it, answered first
            messages.append({"role": "user", "content": earlier})
            said, _ = self._complete(messages)
            messages.append({"role": "assistant", "content": said})
        messages.append({"role": "user", "content": q.question})
        asked = time.perf_counter()
        content, data = self._complete(messages)
        latency = (time.perf_counter() - asked) * 1000
        if isinstance(data.get("citations"), list):
            return self._our_reply(q.question, content, data, latency)
        cited = [
            self._catalogue.citation(n, d)
            for n, d in enumerate(self._catalogue.named_in(content), start=1)
        ]
        answer = foreign_answer(
            q.question, content, says_dont_know(content), cited, [], self._catalogue
        )
        return Reply(answer, None, latency, frozenset())

    def _complete(self, messages: list[dict[str, str]]) -> tuple[str, dict[str, Any]]:
        """The reply's text and the whole response body."""
        url = f"{self._base}/chat/completions"
        body = {"model": self.model, "messages": messages}
        try:
            data = self._checked(self._client.post(url, json=body)).json()
        except httpx.TransportError as exc:
            raise InvalidRequestError("--endpoint", f"{url} could not be reached: {exc}") from exc
        return str(data["choices"][0]["message"].get("content") or ""), data

    def _our_reply(
        self, question: str, content: str, data: Mapping[str, Any], latency: float
    ) -> Reply:
        text = content.split(f"\n\n{SOURCES_HEADING}\n", 1)[0]  # the answer, not its source list
        citations = _CITATIONS.validate_python(data["citations"])
        warnings = [str(w) for w in data.get("warnings") or []]
        answer = foreign_answer(
            question, text, bool(data.get("refused")), citations, warnings, self._catalogue
        )
        retrieved = [c.doc_id for c in citations]
        supplies = frozenset({Capability.RETRIEVAL, Capability.STALE_WARNINGS, Capability.PAGES})
        return Reply(answer, retrieved, latency, supplies)


# -- a LlamaIndex query engine ----------------------------------------------------------------


def load_query_engine(target: str) -> Any:
    """`module:factory` imported (from the working folder too, as uvicorn does) and called."""
    from llama_index.core.base.base_query_engine import BaseQueryEngine

    module_name, _, name = target.partition(":")
    if not module_name or not name:
        raise InvalidRequestError("--llamaindex", f"'{target}' is not MODULE:FACTORY")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        factory = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise InvalidRequestError("--llamaindex", f"cannot load {target}: {exc}") from exc
    engine = factory()
    if not isinstance(engine, BaseQueryEngine):
        raise InvalidRequestError(
            "--llamaindex",
            f"{target}() returned a {type(engine).__name__}, not a LlamaIndex query engine",
        )
    return engine


class LlamaIndexSystem:
    """`engine.query(question)`: its `source_nodes`, in order, are the sources it drew on and
    cites, each mapped to our document by its metadata (`doc_id`, else file name, path or
    title); `metadata` `refused` and `warnings` are read when the engine gives them (ours does),
    else a refusal is told from the text. A query engine holds no conversation: a follow-up
    (a question with a `history`) is asked alone."""

    NAMES = ("doc_id", "file_name", "file_path", "path", "title")  # node metadata, in this order

    def __init__(self, target: str, engine: Any, catalogue: Catalogue) -> None:
        self._engine = engine
        self._catalogue = catalogue
        self._target = target
        self.label = f"llamaindex:{target}"
        self.generator = self.label

    def describe(self) -> dict[str, Any]:
        kind = type(self._engine)
        return {
            "kind": "llamaindex",
            "factory": self._target,
            "engine": f"{kind.__module__}.{kind.__qualname__}",
        }

    def answer(self, q: SuiteQuestion) -> Reply:
        asked = time.perf_counter()
        response = self._engine.query(q.question)
        latency = (time.perf_counter() - asked) * 1000
        text = str(response.response or "")
        meta = response.metadata or {}
        retrieved, unmatched, citations = self._sources(response.source_nodes)
        refused = meta["refused"] if isinstance(meta.get("refused"), bool) else says_dont_know(text)
        warned = isinstance(meta.get("warnings"), list)
        warnings = [str(w) for w in meta.get("warnings") or []] if warned else []
        supplies = {Capability.RETRIEVAL}
        supplies |= {Capability.STALE_WARNINGS} if warned else set()
        supplies |= {Capability.PAGES} if any(c.page for c in citations) else set()
        answer = foreign_answer(q.question, text, refused, citations, warnings, self._catalogue)
        return Reply(answer, retrieved, latency, frozenset(supplies), unmatched=unmatched)

    def _sources(self, nodes: Sequence[Any]) -> tuple[list[str], list[str], list[Citation]]:
        """(document of each node, nodes naming none of ours, one citation per document)."""
        retrieved: list[str] = []
        unmatched: list[str] = []
        citations: dict[str, Citation] = {}
        for scored in nodes:
            meta = scored.node.metadata or {}
            names = [str(meta[k]) for k in self.NAMES if meta.get(k)]
            record = next((r for n in names if (r := self._catalogue.find(n))), None)
            if record is None:
                unmatched.append(names[0] if names else scored.node.node_id)
                retrieved.append("(unknown)")
                continue
            retrieved.append(record.doc_id)
            if record.doc_id not in citations:
                page = _page(meta)
                citations[record.doc_id] = self._catalogue.citation(
                    len(citations) + 1, record, page, str(meta.get("section", ""))
                )
        return retrieved, unmatched, list(citations.values())


def _page(meta: Mapping[str, Any]) -> int | None:
    """Our `page`, or LlamaIndex's PDF readers' `page_label` when it is a number."""
    value = str(meta.get("page") or meta.get("page_label") or "")
    return int(value) if value.isdigit() else None


# -- picking one ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemChoice:
    """Which system `kb eval run` evaluates (`kind`, a key of SYSTEMS) and how to reach it."""

    kind: str = "assistant"
    target: str | None = None  # the endpoint's URL, or the factory's module:factory
    key: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Workbench:
    """What a system may be built from: the run's settings, store, embedder and documents."""

    settings: Settings
    store: ChromaStore
    embedder: Embedder
    documents: Sequence[DocumentRecord]

    def catalogue(self) -> Catalogue:
        return Catalogue(self.documents, self.settings.today_date())


def _assistant(choice: SystemChoice, bench: Workbench) -> SystemUnderTest:
    return AssistantSystem(assemble(bench.settings, bench.store, bench.embedder, None))


def _endpoint(choice: SystemChoice, bench: Workbench) -> SystemUnderTest:
    return EndpointSystem(choice.target or "", choice.key, choice.model, bench.catalogue())


def _llamaindex(choice: SystemChoice, bench: Workbench) -> SystemUnderTest:
    target = choice.target or ""
    return LlamaIndexSystem(target, load_query_engine(target), bench.catalogue())


SYSTEMS: dict[str, Callable[[SystemChoice, Workbench], SystemUnderTest]] = {
    "assistant": _assistant,
    "endpoint": _endpoint,
    "llamaindex": _llamaindex,
}


def build_system(choice: SystemChoice, bench: Workbench) -> SystemUnderTest:
    return SYSTEMS[choice.kind](choice, bench)


def choose(
    *,
    endpoint: str | None,
    key: str | None,
    model: str | None,
    llamaindex: str | None,
    generator: str | None,
) -> SystemChoice:
    """The system the options of `kb eval run` name; conflicting options are refused."""
    if endpoint and llamaindex:
        raise InvalidRequestError("--endpoint", "give --endpoint or --llamaindex, not both")
    if (key or model) and not endpoint:
        raise InvalidRequestError(
            "--endpoint-key", "--endpoint-key and --endpoint-model go with --endpoint"
        )
    if generator and (endpoint or llamaindex):
        raise InvalidRequestError(
            "--generator", "chooses our assistant's generator: it does not apply to another system"
        )
    if endpoint:
        return SystemChoice("endpoint", endpoint, key, model)
    return SystemChoice("llamaindex", llamaindex) if llamaindex else SystemChoice()


def as_system(answerer: Assistant | SystemUnderTest) -> SystemUnderTest:
    return AssistantSystem(answerer) if isinstance(answerer, Assistant) else answerer
