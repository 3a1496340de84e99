"""The LlamaIndex surface (api/llamaindex_surface.py) with real parts: a real store ingested
from sample and corpus documents with the real embedding model, real llama-index-core objects,
and for HTTP a real uvicorn server on loopback with auth on, asked with a reader key of no group
and one of the finance group."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_index.core.base.response.schema import Response
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from api.assembly import build_ingester, build_local_knowledge_base, build_store
from api.keys import KeyStore, Role
from api.llamaindex_surface import (
    KnowledgeBase,
    KnowledgeBaseAPIError,
    LocalKnowledgeBase,
    RemoteKnowledgeBase,
    api_key_headers,
    checked,
)
from api.settings import Settings
from assistant.citations import split_cited
from assistant.prompt import REFUSAL_SENTENCE
from evals.answers import without_warning
from index.embedding import SentenceTransformerEmbedder
from index.filters import Principal
from tests.conftest import TODAY_STR, free_port
from tests.samples import write_service_base
from tests.serving import Live, serving

CORPUS = Path(__file__).parents[1] / "corpus"
# From corpus/: a playbook everyone reads, and a FAQ only the finance group reads.
CORPUS_FILES = ("it/kaig-integration-playbook.md", "finance/finance-ai-contracts-faq.md")
RESTRICTED = {"prices", "finance-ai-contracts-faq"}  # access: [finance]
READABLE = {"ask-kestrel", "clauses", "kaig-faq", "kaig-integration-playbook"}  # by everyone
GATEWAY = "How long does the KAIG gateway keep prompts?"
PRICE = "What does DocuSift charge per invoice page?"
KEYS: dict[str, str] = {}


def build_knowledge_base(root: Path, data: Path, embedder: SentenceTransformerEmbedder) -> Settings:
    write_service_base(root)
    for name in CORPUS_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / name, root / name)
    settings = Settings(
        _env_file=None,
        data_dir=data,
        today=TODAY_STR,
        generator="extractive",  # no LLM: deterministic answers from the sources' sentences
        serve_threads=2,
        rate_limit_per_minute=0,
    )
    report = build_ingester(settings, build_store(settings), embedder).sync(root)
    assert not report.failed
    assert len(report.added) == 6
    keys = KeyStore(settings.keys_path)
    KEYS.update(
        reader=keys.create("reader", Role.READER),
        finance=keys.create("finance reader", Role.READER, ["finance"]),
    )
    keys.close()
    return settings


@pytest.fixture(scope="module")
def settings(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Settings:
    docs, data = tmp_path_factory.mktemp("docs"), tmp_path_factory.mktemp("data")
    return build_knowledge_base(docs, data, embedder)


@pytest.fixture(scope="module")
def local(settings: Settings, embedder: SentenceTransformerEmbedder) -> LocalKnowledgeBase:
    """As an employee of no group."""
    return build_local_knowledge_base(settings, Principal.of(), embedder)


@pytest.fixture(scope="module")
def served(settings: Settings) -> Iterator[Live]:
    with serving(settings) as live:
        yield live


@pytest.fixture
def remote(served: Live) -> Iterator[RemoteKnowledgeBase]:
    with RemoteKnowledgeBase(f"{served.origin}/v1", KEYS["reader"]) as kb:
        yield kb


@pytest.fixture(autouse=True)
def no_llama_index_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-index's global LLM and embedding model unset, and resolving their defaults (which
    try OpenAI) fails the test: our objects must never need them."""
    import llama_index.core.settings as llama_settings

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("llama-index's default LLM or embedding model was resolved")

    monkeypatch.setattr(llama_settings.Settings, "_llm", None)
    monkeypatch.setattr(llama_settings.Settings, "_embed_model", None)
    monkeypatch.setattr(llama_settings, "resolve_llm", refuse)
    monkeypatch.setattr(llama_settings, "resolve_embed_model", refuse)


def _docs(nodes: list[NodeWithScore]) -> list[str]:
    return [n.node.metadata["doc_id"] for n in nodes]


# -- the retriever ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["local", "remote"])
def test_the_retriever_returns_nodes_with_our_metadata(
    where: str, request: pytest.FixtureRequest
) -> None:
    kb: KnowledgeBase = request.getfixturevalue(where)
    retriever = kb.as_retriever(k=3)
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve(GATEWAY)
    assert len(nodes) == 3
    first = nodes[0]
    assert isinstance(first, NodeWithScore)
    assert isinstance(first.node, TextNode)
    meta = first.node.metadata
    assert meta["doc_id"] == "kaig-faq"
    assert first.node.ref_doc_id == "kaig-faq"
    assert "90 days" in first.node.get_content()
    assert (meta["title"], meta["department"], meta["doc_type"]) == ("KAIG FAQ", "it", "faq")
    assert (meta["path"], meta["file_name"]) == ("it/kaig-faq.md", "kaig-faq.md")
    assert meta["stale"] is True  # reviewed 2024-09-01, past its review date
    assert meta["owner"] == "Nadia Haddad"
    assert meta["link"] == "/v1/documents/kaig-faq/source"
    assert 0 < (first.score or 0) <= 1
    shown = first.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "title: KAIG FAQ" in shown
    assert "link" not in shown


@pytest.mark.parametrize("where", ["local", "remote"])
def test_filters_restrict_what_is_retrieved(where: str, request: pytest.FixtureRequest) -> None:
    kb: KnowledgeBase = request.getfixturevalue(where)
    nodes = kb.as_retriever(k=5, filters={"department": "legal"}).retrieve(GATEWAY)
    assert _docs(nodes) == ["clauses"]


def test_a_restricted_document_never_comes_back_to_a_reader_of_another_group(
    local: LocalKnowledgeBase, remote: RemoteKnowledgeBase, served: Live
) -> None:
    for kb in (local, remote):
        nodes = kb.as_retriever(k=50).retrieve(PRICE)  # every chunk it may read
        assert set(_docs(nodes)) == READABLE
        response = kb.as_query_engine().query(PRICE)
        assert RESTRICTED.isdisjoint(_docs(response.source_nodes))
        assert "0.045" not in str(response)
    finance = RemoteKnowledgeBase(served.origin, KEYS["finance"])
    assert _docs(finance.as_retriever(k=1).retrieve(PRICE)) == ["prices"]
    finance.close()


# -- the query engine -------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["local", "remote"])
def test_the_query_engine_answers_with_citations_and_stale_warnings(
    where: str, request: pytest.FixtureRequest
) -> None:
    kb: KnowledgeBase = request.getfixturevalue(where)
    engine = kb.as_query_engine()
    assert isinstance(engine, CustomQueryEngine)
    response = engine.query(GATEWAY)
    assert isinstance(response, Response)
    assert "90 days before deletion. [1]" in str(response)
    meta = response.metadata or {}
    assert meta["refused"] is False
    cited = [c["doc_id"] for c in meta["citations"]]
    assert cited[0] == "kaig-faq"
    assert len(meta["warnings"]) == 1  # the FAQ is past its review date, the playbook is not
    assert meta["warnings"][0].startswith('[1] "KAIG FAQ" is past its review date')
    assert meta["generator"] == "extractive"
    nodes = response.source_nodes
    assert [n.node.metadata["n"] for n in nodes] == [c["n"] for c in meta["citations"]]
    assert _docs(nodes) == cited
    assert [n.score for n in nodes] == [c["support"] for c in meta["citations"]]
    first = nodes[0].node
    assert (first.metadata["department"], first.metadata["stale"]) == ("it", True)
    assert "keeps prompts and answers for 90 days" in first.get_content()
    quoted = split_cited(without_warning(str(response)))
    for node in nodes:  # its text is the cited section, which the extractive answer quotes
        n, text = node.node.metadata["n"], node.node.get_content()
        assert any(sentence in text for sentence, numbers in quoted if n in numbers)


@pytest.mark.parametrize("where", ["local", "remote"])
def test_a_refusal_has_the_flag_and_no_sources(where: str, request: pytest.FixtureRequest) -> None:
    kb: KnowledgeBase = request.getfixturevalue(where)
    response = kb.as_query_engine().query("Which catering company serves the staff canteen?")
    assert (response.metadata or {})["refused"] is True
    assert str(response).startswith(REFUSAL_SENTENCE)
    assert response.source_nodes == []


# -- HTTP errors ------------------------------------------------------------------------------


def test_a_bad_key_is_a_401_with_the_servers_detail(served: Live) -> None:
    kb = RemoteKnowledgeBase(served.origin, "kb_00000000_" + "x" * 40)
    with pytest.raises(KnowledgeBaseAPIError) as caught:
        kb.as_retriever().retrieve(GATEWAY)
    kb.close()
    assert caught.value.status == 401
    assert caught.value.detail == "the API key is unknown or revoked: see `kb keys list`"
    assert "/v1/search answered 401" in str(caught.value)


def test_a_role_the_route_does_not_allow_is_a_403(served: Live) -> None:
    response = httpx.get(
        f"{served.origin}/v1/documents/stale", headers=api_key_headers(KEYS["reader"])
    )
    with pytest.raises(KnowledgeBaseAPIError) as caught:
        checked(response)
    assert caught.value.status == 403
    assert "'spoke' role" in caught.value.detail


def test_over_the_rate_limit_is_a_429_saying_when_to_retry(settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_limit_per_minute": 1, "rate_limit_burst": 1})
    with serving(limited) as live, RemoteKnowledgeBase(live.origin, KEYS["reader"]) as kb:
        kb.as_retriever().retrieve(GATEWAY)
        with pytest.raises(KnowledgeBaseAPIError) as caught:
            kb.as_retriever().retrieve(GATEWAY)
    assert caught.value.status == 429
    assert "requests a minute" in caught.value.detail
    assert "retry after" in str(caught.value)


class _Unavailable(BaseHTTPRequestHandler):
    """A gateway in front of the API whose upstream is down: 503 with a problem body."""

    def do_POST(self) -> None:
        body = json.dumps({"status": 503, "title": "Unavailable", "detail": "upstream is down"})
        self.send_response(503)
        self.send_header("Content-Type", "application/problem+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_server_error_and_an_unreachable_server_are_clear() -> None:
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    try:
        with (
            RemoteKnowledgeBase(f"http://127.0.0.1:{gateway.server_port}", "k") as kb,
            pytest.raises(KnowledgeBaseAPIError) as caught,
        ):
            kb.as_query_engine().query(GATEWAY)
    finally:
        gateway.shutdown()
        gateway.server_close()
    assert caught.value.status == 503
    assert caught.value.detail == "upstream is down"
    assert "a server error" in str(caught.value)
    with (
        RemoteKnowledgeBase(f"http://127.0.0.1:{free_port()}", "k", timeout_s=5) as kb,
        pytest.raises(KnowledgeBaseAPIError) as unreachable,
    ):
        kb.as_retriever().retrieve(GATEWAY)
    assert unreachable.value.status is None
    assert "could not be reached" in str(unreachable.value)
