"""LlamaIndex over the knowledge base: the surface for spokes' own LlamaIndex apps.

`KBRetriever` (llama-index-core's `BaseRetriever`) returns our hybrid search as
`NodeWithScore`s; `KBQueryEngine` (a `CustomQueryEngine`) returns our checked answer as a
`Response` whose `source_nodes` are the cited passages and whose `metadata` carries the
citations, the refusal flag and the stale-source warnings. Both read a `KnowledgeBase`:

- `LocalKnowledgeBase`: in process, over the services the app assembles from settings
  (`build_local_knowledge_base` in api/assembly.py, or `from_services` of a running app), asking
  as one `Principal`, whose groups decide what is retrieved (as a key of those groups would);
- `RemoteKnowledgeBase`: over HTTP with an API key, through `POST /v1/search`, `POST /v1/ask`
  and `GET /v1/documents/{id}` (for the cited passages' text); an error status raises
  `KnowledgeBaseAPIError` with the status and the server's detail.

Nothing here reads or sets llama-index's global `Settings`: our objects use no llama-index LLM
or embedding model, so its OpenAI defaults are never reached. docs/llamaindex.md has examples.
"""

from __future__ import annotations

import datetime as dt
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from llama_index.core.base.response.schema import Response
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import (
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from pydantic import ConfigDict, Field, TypeAdapter

from api.deps import Services
from api.schemas import ChunkOut, SearchFiltersIn
from assistant.prompt import Turn
from assistant.service import Answer, Assistant, Citation, source_link
from index.errors import KBError, NotFoundError
from index.filters import Principal
from index.hits import Hit
from index.hybrid import HybridRetriever
from index.store import ChromaStore

Filters = SearchFiltersIn | Mapping[str, Any] | None  # the `filters` object of POST /v1/search
# What an LLM reading a node sees besides its text; ids, links and scores stay out of prompts.
LLM_METADATA = ("title", "section", "page", "department", "doc_type", "stale", "review_date")
_HITS = TypeAdapter(list[Hit])
_ANSWER = TypeAdapter(Answer)


@dataclass(frozen=True)
class CitedDocument:
    """What a cited node needs beyond the citation: the document's department and type, and
    its chunks (the cited passage is taken from them)."""

    department: str
    doc_type: str
    chunks: list[ChunkOut]


class KnowledgeBase(ABC):
    """Search, answers and documents of the knowledge base, as one caller sees them."""

    @abstractmethod
    def search(self, query: str, k: int, filters: SearchFiltersIn, neighbors: int) -> list[Hit]:
        """Ranked chunks, as `POST /v1/search` returns them."""

    @abstractmethod
    def ask(self, question: str, filters: SearchFiltersIn, history: Sequence[Turn]) -> Answer:
        """The checked answer, as `POST /v1/ask` returns it."""

    @abstractmethod
    def document(self, doc_id: str) -> CitedDocument:
        """A document the caller may read (a cited one)."""

    def as_retriever(self, k: int = 5, filters: Filters = None, neighbors: int = 0) -> KBRetriever:
        return KBRetriever(self, k=k, filters=filters, neighbors=neighbors)

    def as_query_engine(self, filters: Filters = None) -> KBQueryEngine:
        return KBQueryEngine(knowledge_base=self, filters=_filters(filters))


def _filters(filters: Filters) -> SearchFiltersIn:
    if isinstance(filters, SearchFiltersIn):
        return filters
    return SearchFiltersIn.model_validate(dict(filters or {}))


# -- llama-index objects ----------------------------------------------------------------------


class KBRetriever(BaseRetriever):
    """Our hybrid retrieval as a LlamaIndex retriever: a node per chunk, its text the chunk
    (with its neighbours when `neighbors` > 0), its score the fused rank score in 0..1."""

    def __init__(
        self, knowledge_base: KnowledgeBase, k: int = 5, filters: Filters = None, neighbors: int = 0
    ) -> None:
        super().__init__()
        self.knowledge_base = knowledge_base
        self.k = k
        self.filters = _filters(filters)
        self.neighbors = neighbors

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.knowledge_base.search(
            query_bundle.query_str, self.k, self.filters, self.neighbors
        )
        return [hit_node(h) for h in hits]


class KBQueryEngine(CustomQueryEngine):
    """Our grounded answer as a LlamaIndex query engine. `source_nodes`: one per citation
    [n], in order, its text the cited section's passage and its score the citation's support;
    `metadata`: `citations`, `refused`, `refusal_reason`, `warnings`, `unsupported`, `nearby`,
    `answer_id`, `generator`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    knowledge_base: KnowledgeBase
    filters: SearchFiltersIn = Field(default_factory=SearchFiltersIn)

    def custom_query(self, query_str: str) -> Response:
        answer = self.knowledge_base.ask(query_str, self.filters, ())
        documents: dict[str, CitedDocument] = {}
        nodes = []
        for citation in answer.citations:
            if citation.doc_id not in documents:
                documents[citation.doc_id] = self.knowledge_base.document(citation.doc_id)
            nodes.append(cited_node(answer, citation, documents[citation.doc_id]))
        return Response(
            response=answer.answer, source_nodes=nodes, metadata=answer_metadata(answer)
        )


def _node(node_id: str, doc_id: str, text: str, metadata: dict[str, Any]) -> TextNode:
    return TextNode(
        id_=node_id,
        text=text,
        metadata=metadata,
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc_id)},
        excluded_embed_metadata_keys=list(metadata),  # our vectors are made; none are asked for
        excluded_llm_metadata_keys=[k for k in metadata if k not in LLM_METADATA],
    )


def hit_node(hit: Hit) -> NodeWithScore:
    """A retrieved chunk as a node: id the chunk id, source the document id, with our
    metadata (`stale` is the hit's `is_stale`; `file_name` as LlamaIndex's readers name it)."""
    metadata = {
        "doc_id": hit.doc_id,
        "title": hit.title,
        "department": hit.department,
        "doc_type": hit.doc_type,
        "section": hit.section,
        "path": hit.path,
        "file_name": PurePosixPath(hit.path).name,
        "page": hit.page,
        "page_end": hit.page_end,
        "stale": hit.is_stale,
        "review_date": hit.review_date,
        "owner": hit.owner,
        "status": hit.status,
        "project": hit.project,
        "vendor": hit.vendor,
        "outcome": hit.outcome,
        "year": hit.year,
        "link": source_link(hit),
    }
    node = _node(hit.chunk_id, hit.doc_id, hit.context or hit.text, metadata)
    return NodeWithScore(node=node, score=hit.score)


def cited_node(answer: Answer, citation: Citation, document: CitedDocument) -> NodeWithScore:
    """A citation as a node: its text the chunks of the cited section (on the cited pages,
    when the citation names pages), its score the citation's support."""
    metadata = {
        "n": citation.n,
        "doc_id": citation.doc_id,
        "title": citation.title,
        "department": document.department,
        "doc_type": document.doc_type,
        "section": citation.section,
        "path": citation.path,
        "file_name": PurePosixPath(citation.path).name,
        "page": citation.page,
        "pages": citation.pages,
        "stale": citation.stale,
        "review_date": citation.review_date,
        "owner": citation.owner,
        "support": citation.support,
        "link": citation.link,
    }
    text = passage(citation, document.chunks)
    node = _node(f"{answer.answer_id}-{citation.n}", citation.doc_id, text, metadata)
    return NodeWithScore(node=node, score=citation.support)


def passage(citation: Citation, chunks: Sequence[ChunkOut]) -> str:
    """The text a citation points at: its section's chunks, narrowed to its pages if any."""
    pages = {*citation.pages, *([citation.page] if citation.page else [])}
    section = [c for c in chunks if c.section == citation.section]
    on_pages = [c for c in section if c.page in pages]
    return "\n\n".join(c.text for c in (on_pages or section))


def answer_metadata(answer: Answer) -> dict[str, Any]:
    return {
        "answer_id": answer.answer_id,
        "refused": answer.refused,
        "refusal_reason": answer.refusal_reason,
        "citations": [asdict(c) for c in answer.citations],
        "warnings": answer.warnings,
        "unsupported": answer.unsupported,
        "nearby": answer.nearby,
        "generator": answer.generator,
    }


# -- in process -------------------------------------------------------------------------------


class LocalKnowledgeBase(KnowledgeBase):
    """The knowledge base in this process, asked as `principal` (made from settings by
    api/assembly.py `build_local_knowledge_base`)."""

    def __init__(
        self,
        retriever: HybridRetriever,
        assistant: Assistant,
        store: ChromaStore,
        principal: Principal,
        today: Callable[[], dt.date],
    ) -> None:
        self._retriever = retriever
        self._assistant = assistant
        self._store = store
        self._today = today
        self.principal = principal

    @classmethod
    def from_services(cls, services: Services, principal: Principal) -> LocalKnowledgeBase:
        """Over the services of a running app (`app.state.services`)."""
        return cls(
            services.retriever, services.assistant, services.store, principal, services.today
        )

    def search(self, query: str, k: int, filters: SearchFiltersIn, neighbors: int) -> list[Hit]:
        return self._retriever.retrieve(
            query,
            k,
            today=self._today(),
            filters=filters.to_filters(),
            principal=self.principal,
            neighbors=neighbors,
        )

    def ask(self, question: str, filters: SearchFiltersIn, history: Sequence[Turn]) -> Answer:
        return self._assistant.ask(
            question, principal=self.principal, history=history, filters=filters.to_filters()
        )

    def document(self, doc_id: str) -> CitedDocument:
        record = self._store.document(doc_id)
        if record is None:
            raise NotFoundError(f"no document '{doc_id}'")
        chunks = [
            ChunkOut(chunk_id=cid, section=str(md.get("section", "")), page=md.get("page"), text=t)
            for cid, t, md in self._store.document_chunks(doc_id)
        ]
        return CitedDocument(record.meta.department, record.meta.doc_type.value, chunks)


# -- over HTTP --------------------------------------------------------------------------------


# What an error status of our API usually means, added to its detail (api/errors.py).
_HINTS = {
    401: "not authenticated: check the API key (`kb keys create` makes one)",
    403: "forbidden: the key's role may not do this",
    429: "rate limited",
}


class KnowledgeBaseAPIError(KBError):
    """An HTTP API answered with an error status (`status`, and `detail` as it said it), or
    could not be reached (`status` None)."""

    def __init__(self, url: str, status: int | None, detail: str, retry_after: str = "") -> None:
        self.status = status
        self.detail = detail
        hint = _HINTS.get(status or 0, "a server error" if (status or 0) >= 500 else "")
        hint += f"; retry after {retry_after} s" if retry_after else ""
        said = f"answered {status}" if status else "could not be reached"
        super().__init__(f"{url} {said}: {detail}" + (f" ({hint})" if hint else ""))


def checked(response: httpx.Response) -> httpx.Response:
    """The response, or KnowledgeBaseAPIError with its status and the body's detail (our
    problem+json `detail`, an OpenAI-style `error.message`, or the text)."""
    if response.status_code < 400:
        return response
    try:
        body = response.json()
    except ValueError:
        body = None
    detail: Any = response.text[:300]
    if isinstance(body, dict):
        error = body.get("error")
        detail = body.get("detail") or (error.get("message") if isinstance(error, dict) else error)
    text = detail if isinstance(detail, str) else json.dumps(detail)
    url = str(response.request.url)
    raise KnowledgeBaseAPIError(
        url, response.status_code, text, response.headers.get("Retry-After", "")
    )


def api_key_headers(api_key: str | None) -> dict[str, str]:
    """How our API takes a key (api/deps.py): `Authorization: Bearer <key>`."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class RemoteKnowledgeBase(KnowledgeBase):
    """The knowledge base of a server (`base_url`: its origin, `/v1` optional), asked with
    an API key, whose groups decide what is retrieved. Close it, or use it in `with`."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout_s: float = 120.0) -> None:
        origin = base_url.rstrip("/").removesuffix("/v1")
        headers = api_key_headers(api_key)
        self._client = httpx.Client(base_url=origin, headers=headers, timeout=timeout_s)

    def __enter__(self) -> RemoteKnowledgeBase:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise KnowledgeBaseAPIError(f"{self._client.base_url}{path}", None, str(exc)) from exc
        return checked(response).json()

    def search(self, query: str, k: int, filters: SearchFiltersIn, neighbors: int) -> list[Hit]:
        body = {"query": query, "k": k, "filters": _sent(filters), "neighbors": neighbors}
        found = self._call("POST", "/v1/search", {**body, "facets": []})
        return _HITS.validate_python(found["hits"])

    def ask(self, question: str, filters: SearchFiltersIn, history: Sequence[Turn]) -> Answer:
        turns = [{"role": t.role, "content": t.content} for t in history]
        body = {"question": question, "history": turns, "filters": _sent(filters)}
        return _ANSWER.validate_python(self._call("POST", "/v1/ask", body))

    def document(self, doc_id: str) -> CitedDocument:
        found = self._call("GET", f"/v1/documents/{quote(doc_id, safe='')}")
        chunks = [ChunkOut.model_validate(c) for c in found["chunk_list"]]
        return CitedDocument(found["department"], found["doc_type"], chunks)


def _sent(filters: SearchFiltersIn) -> dict[str, Any]:
    return filters.model_dump(mode="json", exclude_defaults=True)
