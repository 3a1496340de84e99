"""Other systems under test in the evaluation suites (evals/systems.py), with real parts: a real
store ingested from sample and corpus documents with the real embedding model; `--endpoint`
pointed at our own server's /v1/chat/completions (a real uvicorn server on loopback, auth on,
the extractive generator) and at a plain OpenAI-compatible gateway in front of it that drops
our extension fields; `--llamaindex` with our in-process query engine and with a plain
LlamaIndex app. What a system cannot supply must be absent from the summary, never 0."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.schema import TextNode
from typer.testing import CliRunner

from api.assembly import build_ingester, build_local_knowledge_base, build_store
from api.cli import app
from api.keys import KeyStore, Role
from api.llamaindex_surface import api_key_headers
from api.settings import Settings
from evals.catalogue import Catalogue
from evals.suite import Suite, header, read_records, read_summary
from evals.suite_data import Dataset
from evals.systems import (
    AssistantSystem,
    EndpointSystem,
    LlamaIndexSystem,
    SystemUnderTest,
    assemble,
    choose,
)
from index.embedding import SentenceTransformerEmbedder
from index.errors import InputError, InvalidRequestError
from index.filters import Principal
from index.store import ChromaStore
from tests.conftest import TODAY_STR
from tests.samples import write_service_base
from tests.serving import Live, serving

CORPUS = Path(__file__).parents[1] / "corpus"
DATASET = (
    "question,expected_document,key_facts,type,groups\n"
    "How long does the KAIG gateway keep prompts?,kaig-faq,90 days,single_fact,\n"
    "What share of contacts did the Ask Kestrel chatbot deflect?,ask-kestrel,34%,single_fact,\n"
    "What does DocuSift charge per invoice page?,prices,GBP 0.045,single_fact,finance\n"
    "Which catering company serves the staff canteen?,,,unanswerable,\n"
)
GATEWAY, KESTREL, PRICE, CANTEEN = "tiny:2", "tiny:3", "tiny:4", "tiny:5"
RETRIEVAL = ("hit@1", "hit@2", "hit@5", "hit@10", "mrr")
KEYS: dict[str, str] = {}
Base = tuple[Settings, ChromaStore, Path]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Base:
    """The four sample documents (a price list only finance reads, an FAQ past its review
    date), a corpus playbook, a reader key of no group, and the dataset."""
    root = write_service_base(tmp_path_factory.mktemp("docs"))
    shutil.copy(CORPUS / "it" / "kaig-integration-playbook.md", root / "it")
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path_factory.mktemp("data"),
        today=TODAY_STR,
        generator="extractive",  # no LLM
        serve_threads=2,
        rate_limit_per_minute=0,
    )
    store = build_store(settings)
    assert len(build_ingester(settings, store, embedder).sync(root).added) == 5
    keys = KeyStore(settings.keys_path)
    KEYS["reader"] = keys.create("reader", Role.READER)
    keys.close()
    dataset = root / "tiny.csv"
    dataset.write_text(DATASET, encoding="utf-8")
    return settings, store, dataset


@pytest.fixture(scope="module")
def served(base: Base) -> Iterator[Live]:
    with serving(base[0]) as live:
        yield live


@pytest.fixture(autouse=True)
def no_llama_index_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolving llama-index's default LLM or embedding model (OpenAI) fails the test; an LLM
    explicitly disabled (None) or an embedding model given as an object passes through."""
    import llama_index.core.settings as llama_settings

    resolve_llm = llama_settings.resolve_llm
    resolve_embed_model = llama_settings.resolve_embed_model

    def refuse_llm(llm: Any = "default", *args: Any, **kwargs: Any) -> Any:
        if llm is None:
            return resolve_llm(None, *args, **kwargs)
        raise AssertionError("llama-index's default LLM was resolved")

    def refuse_embed_model(model: Any = "default", *args: Any, **kwargs: Any) -> Any:
        if model is not None and not isinstance(model, str):
            return resolve_embed_model(model, *args, **kwargs)
        raise AssertionError("llama-index's default embedding model was resolved")

    monkeypatch.setattr(llama_settings.Settings, "_llm", None)
    monkeypatch.setattr(llama_settings.Settings, "_embed_model", None)
    monkeypatch.setattr(llama_settings, "resolve_llm", refuse_llm)
    monkeypatch.setattr(llama_settings, "resolve_embed_model", refuse_embed_model)


def catalogue(base: Base) -> Catalogue:
    return Catalogue(base[1].documents(), base[0].today_date())


def run(
    base: Base, system: SystemUnderTest, folder: Path
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The dataset through `system` into `folder`, as `kb eval run` runs it."""
    settings, store, path = base
    dataset, documents = Dataset("tiny", path, "csv"), store.documents()
    questions = dataset.load()
    described = system.describe()
    made = header(
        dataset, questions, None, system.generator, settings, {}, documents, "KB_TODAY", described
    )
    summary = Suite(questions, system, documents, folder, made).run()
    return summary, {r["id"]: r for r in read_records(folder)}


def test_the_options_pick_one_system() -> None:
    def pick(**given: str) -> str:
        options = {"endpoint": None, "key": None, "model": None, "llamaindex": None}
        return choose(**{**options, "generator": None, **given}).kind

    assert pick() == "assistant"
    assert pick(endpoint="http://127.0.0.1:9/v1", key="k", model="m") == "endpoint"
    assert pick(llamaindex="apps.hr:engine") == "llamaindex"
    for wrong, parameter in (
        ({"endpoint": "u", "llamaindex": "m:f"}, "--endpoint"),
        ({"key": "k"}, "--endpoint-key"),
        ({"llamaindex": "m:f", "generator": "extractive"}, "--generator"),
    ):
        with pytest.raises(InvalidRequestError) as caught:
            pick(**wrong)
        assert caught.value.parameter == parameter


def test_our_assistant_is_named_and_a_run_resumes_only_with_the_same_system(
    base: Base, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    ours = AssistantSystem(assemble(base[0], base[1], embedder, "extractive"))
    summary, records = run(base, ours, tmp_path)
    assert summary["configuration"]["system"] == {"kind": "assistant", "generator": "extractive"}
    dataset = Dataset("tiny", base[2], "csv")
    default = header(dataset, [], None, "extractive", base[0], {}, [], "KB_TODAY")
    assert default["configuration"]["system"] == ours.describe()  # what runs before it said
    assert {r["system"] for r in records.values()} == {"assistant:extractive"}
    assert records[GATEWAY]["first_rank"] == 1
    assert "faithfulness" in summary["metrics"]["overall"]
    other = EndpointSystem("http://127.0.0.1:9/v1", None, "m", catalogue(base))
    with pytest.raises(InputError, match=r"another generator, configuration\.system:"):
        run(base, other, tmp_path)


# -- an OpenAI-compatible endpoint ------------------------------------------------------------


def test_our_chat_completions_as_an_endpoint(base: Base, served: Live, tmp_path: Path) -> None:
    system = EndpointSystem(f"{served.origin}/v1", KEYS["reader"], None, catalogue(base))
    assert system.model == "kb-extractive"  # the first of GET /v1/models
    summary, records = run(base, system, tmp_path)
    gateway = records[GATEWAY]
    assert gateway["system"] == f"endpoint:{served.origin}/v1"
    assert gateway["cited_docs"][0] == "kaig-faq"  # from the `citations` field
    assert gateway["retrieved"] == gateway["cited_docs"]
    assert gateway["first_rank"] == 1
    assert gateway["key_facts_found"] == ["90 days"]
    assert gateway["warned"] is True  # the `warnings` field: the FAQ is past its review date
    assert gateway["stale_without_warning"] is False
    assert "Sources:" not in gateway["answer"]
    assert {c["support"] for c in gateway["citations"]} == {None}  # not ours to measure
    assert "prices" not in records[PRICE]["cited_docs"]  # asked with the key: no finance group
    assert records[CANTEEN]["refused"] is True
    overall = summary["metrics"]["overall"]
    assert {"hit@1", "mrr", "key_fact_recall", "doc_hit", "unanswerable_refused"} <= set(overall)
    assert "faithfulness" not in overall
    assert "removed_per_answer" not in overall
    described = summary["configuration"]["system"]
    digest = hashlib.sha256(KEYS["reader"].encode()).hexdigest()[:12]
    assert described == {
        "kind": "endpoint",
        "url": f"{served.origin}/v1",
        "model": "kb-extractive",
        "key_sha256": digest,
    }
    assert summary["generator"] == "endpoint:kb-extractive"
    written = (tmp_path / "summary.json").read_text() + (tmp_path / "records.jsonl").read_text()
    assert KEYS["reader"] not in written


class _PlainGateway(BaseHTTPRequestHandler):
    """The endpoint under test: an OpenAI-compatible gateway in front of our server that
    passes OpenAI's fields only (as many proxies do), so the answer is all there is to read."""

    upstream = ""
    key = ""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        reply = httpx.post(
            f"{self.upstream}/v1/chat/completions",
            content=body,
            headers={**api_key_headers(self.key), "Content-Type": "application/json"},
            timeout=120,
        ).json()
        plain = {k: reply[k] for k in ("id", "object", "created", "model", "choices", "usage")}
        data = json.dumps(plain).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_plain_endpoint_is_read_from_its_text(base: Base, served: Live, tmp_path: Path) -> None:
    handler = type("Gateway", (_PlainGateway,), {"upstream": served.origin, "key": KEYS["reader"]})
    gateway_server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=gateway_server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{gateway_server.server_port}/v1"
    try:
        summary, records = run(base, EndpointSystem(url, None, "kb", catalogue(base)), tmp_path)
    finally:
        gateway_server.shutdown()
        gateway_server.server_close()
    gateway = records[GATEWAY]
    assert re.search(r"^\[1\] KAIG FAQ \(it/kaig-faq\.md\)", gateway["answer"], re.M)
    assert gateway["cited_docs"][0] == "kaig-faq"  # recognised by its title in the text
    assert gateway["citations"][0]["stale"] is True  # from our registry
    for field in ("retrieved", "first_rank", "hit@1", "warned", "stale_without_warning"):
        assert gateway[field] is None  # the text does not say
    assert records[CANTEEN]["refused"] is True  # "I don't know based on the knowledge base."
    overall = summary["metrics"]["overall"]
    assert overall["doc_hit"] > 0
    assert overall["unanswerable_refused"] == 1.0
    for absent in (*RETRIEVAL, "faithfulness", "removed_per_answer", "stale_without_warning"):
        assert absent not in overall


# -- a LlamaIndex query engine ----------------------------------------------------------------


def our_query_engine() -> BaseQueryEngine:
    """`--llamaindex tests.test_eval_systems:our_query_engine`: our in-process query engine
    from the live settings (KB_*), as an employee of no group."""
    return build_local_knowledge_base(Settings(), Principal.of()).as_query_engine()


def test_kb_eval_run_with_a_factory_of_our_query_engine(
    base: Base, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _, dataset = base
    for name, value in (("DATA_DIR", settings.data_dir), ("TODAY", TODAY_STR)):
        monkeypatch.setenv(f"KB_{name}", str(value))
    monkeypatch.setenv("KB_GENERATOR", "extractive")
    target = "tests.test_eval_systems:our_query_engine"
    command = ["eval", "run", "--dataset", str(dataset), "--out", str(tmp_path)]
    done = CliRunner().invoke(app, [*command, "--llamaindex", target])
    assert done.exit_code == 0, done.output
    summary, records = read_summary(tmp_path), {r["id"]: r for r in read_records(tmp_path)}
    assert summary["configuration"]["system"] == {
        "kind": "llamaindex",
        "factory": target,
        "engine": "api.llamaindex_surface.KBQueryEngine",
    }
    gateway = records[GATEWAY]
    assert gateway["system"] == f"llamaindex:{target}"
    assert gateway["cited_docs"][0] == "kaig-faq"  # from the source nodes' doc_id
    assert gateway["first_rank"] == 1
    assert gateway["key_facts_found"] == ["90 days"]
    assert gateway["warned"] is True  # the response metadata's warnings
    assert records[CANTEEN]["refused"] is True  # the response metadata's flag
    assert "faithfulness" not in summary["metrics"]["overall"]
    again = CliRunner().invoke(app, [*command, "--endpoint", "http://127.0.0.1:9/v1"])
    assert isinstance(again.exception, InvalidRequestError)  # no model named, none listed
    assert again.exception.parameter == "--endpoint-model"
    moved = CliRunner().invoke(
        app, [*command, "--endpoint", "http://127.0.0.1:9/v1", "--endpoint-model", "m"]
    )
    assert isinstance(moved.exception, InputError)
    assert "another generator, configuration.system:" in str(moved.exception)


class WordHashEmbedding(BaseEmbedding):
    """Part of the foreign app: a deterministic fake embedding (words hashed into 64
    dimensions), which still tells texts apart by the words they share."""

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * 64
        for word in re.findall(r"\w+", text.lower()):
            vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 64] += 1.0
        norm = sum(v * v for v in vector) ** 0.5 or 1.0
        return [v / norm for v in vector]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)


def foreign_app() -> BaseQueryEngine:
    """THE FOREIGN APP UNDER EVALUATION, not part of the product: a spoke's plain LlamaIndex
    app (a VectorStoreIndex over three nodes, a fake embedding, llama-index's MockLLM, which
    answers "text text ..."). Its nodes name our documents as LlamaIndex readers do (file name,
    title), and one names a file we do not hold."""
    nodes = [
        TextNode(
            text="The KAIG gateway keeps prompts for 90 days.",
            metadata={"file_name": "kaig-faq.md"},
        ),
        TextNode(text="Ask Kestrel deflected 34% of contacts.", metadata={"title": "Ask Kestrel"}),
        TextNode(
            text="The staff canteen menu changes weekly.",
            metadata={"file_name": "canteen-menu.txt"},
        ),
    ]
    index = VectorStoreIndex(nodes, embed_model=WordHashEmbedding())
    return index.as_query_engine(llm=MockLLM(max_tokens=4), similarity_top_k=2)


def test_a_foreign_llamaindex_app_is_scored_from_its_source_nodes(
    base: Base, tmp_path: Path
) -> None:
    target = "tests.test_eval_systems:foreign_app"
    system: SystemUnderTest = LlamaIndexSystem(target, foreign_app(), catalogue(base))
    summary, records = run(base, system, tmp_path)
    gateway, kestrel, canteen = records[GATEWAY], records[KESTREL], records[CANTEEN]
    assert gateway["retrieved"][0] == "kaig-faq"  # by its file name
    assert gateway["first_rank"] == 1
    assert kestrel["retrieved"][0] == "ask-kestrel"  # by its title
    assert canteen["unmatched_sources"][0] == "canteen-menu.txt"
    assert canteen["retrieved"][0] == "(unknown)"
    assert canteen["refused"] is False  # MockLLM answers everything
    assert gateway["answer"] == "text text text text"
    assert gateway["key_facts_found"] == []
    assert gateway["warned"] is None  # it gives no warnings: absent, not "no warning"
    overall = summary["metrics"]["overall"]
    assert overall["hit@1"] == 0.6667  # it holds two of the three expected documents
    assert overall["unanswerable_refused"] == 0.0
    assert overall["key_fact_recall"] == 0.0
    for absent in ("faithfulness", "removed_per_answer", "stale_without_warning"):
        assert absent not in overall


def test_the_plain_llamaindex_baseline_of_make_eval_reads_the_same_folder(
    base: Base, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`evals.plain_llamaindex:engine` (the baseline `make eval` runs): LlamaIndex's defaults
    over KB_CORPUS_DIR with the packaged model; the nearest chunk's text is its answer."""
    from evals import plain_llamaindex

    monkeypatch.setenv("KB_CORPUS_DIR", str(base[2].parent))
    target = "evals.plain_llamaindex:engine"
    system: SystemUnderTest = LlamaIndexSystem(target, plain_llamaindex.engine(), catalogue(base))
    summary, records = run(base, system, tmp_path)
    gateway, canteen = records[GATEWAY], records[CANTEEN]
    assert gateway["retrieved"][0] == "kaig-faq"  # its nodes carry the file name
    assert "90 days" in gateway["answer"]
    assert len(gateway["retrieved"]) == plain_llamaindex.TOP_K
    assert canteen["refused"] is False  # it never refuses
    assert summary["metrics"]["overall"]["hit@5"] >= 0.66
