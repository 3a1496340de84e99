"""The supersession and conflict report (`GET /v1/conflicts`, assistant/conflicts.py) over a
small corpus written here, ingested into a real embedded store with the real model, with the
real query log and keys of different roles and groups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.assembly import build_ingester, build_store
from api.keys import KeyStore, Role
from assistant.querylog import Asker
from assistant.service import Answer, Citation
from assistant.values import extract
from index.embedding import SentenceTransformerEmbedder
from tests.conftest import markdown, write
from tests.project_corpus import kb_settings
from tests.serving import services

KEYS: dict[str, str] = {}
DOCS = {
    "it/gateway-retention.md": markdown(
        "gateway-retention",
        "# Gateway retention\n\nThe Gateway keeps prompt logs for 30 days before deletion.\n",
        doc_type="policy",
        department="it",
    ),
    "it/gateway-faq.md": markdown(
        "gateway-faq",
        "# Gateway FAQ\n\nThe Gateway keeps prompt logs for 90 days before deletion.\n",
        doc_type="faq",
        department="it",
    ),
    "hr/gateway-hr-notes.md": markdown(
        "gateway-hr-notes",
        "# HR notes\n\nThe Gateway keeps prompt logs for 60 days before deletion.\n",
        department="hr",
        access="[hr]",
    ),
    "finance/nimbus-threshold.md": markdown(
        "nimbus-threshold",
        "# Nimbus threshold\n\nThe Nimbus extraction confidence threshold is 0.90 for invoices.\n",
        department="finance",
    ),
    "finance/nimbus-faq.md": markdown(
        "nimbus-faq",
        "# Nimbus FAQ\n\nThe Nimbus extraction confidence threshold is 90% for invoices.\n",
        doc_type="faq",
        department="finance",
    ),
    "coe/orion-board-v1.md": markdown(
        "orion-board-v1",
        "# Orion board (old)\n\nThe Orion review board meets every 14 days in Leeds.\n",
        department="coe",
        status="superseded",
        owner="Old Owner",
    ),
    "coe/orion-board-v2.md": markdown(
        "orion-board-v2",
        "# Orion board\n\nThe Orion review board meets every 7 days in Leeds.\n",
        department="coe",
        supersedes="orion-board-v1",
        owner="New Owner",
    ),
    "coe/orphan-old.md": markdown(
        "orphan-old",
        "# Orphan\n\nNothing replaces this one.\n",
        department="coe",
        status="superseded",
    ),
}


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("space") / "corpus"
    for rel, text in DOCS.items():
        write(folder / rel, text)
    settings = kb_settings(folder, tmp_path_factory.mktemp("data"))
    report = build_ingester(settings, build_store(settings), embedder).sync(folder)
    assert not report.failed
    keys = KeyStore(settings.keys_path)
    KEYS.update(
        admin=keys.create("admin", Role.ADMIN),
        finance_spoke=keys.create("fs", Role.SPOKE, ["finance"]),
        hr_spoke=keys.create("hs", Role.SPOKE, ["hr"]),
        reader=keys.create("r", Role.READER, ["hr"]),
    )
    keys.close()
    with TestClient(create_app(settings)) as test_client:
        for _ in range(3):
            cite(test_client, "orion-board-v1")
        cite(test_client, "orion-board-v2")
        yield test_client


def cite(client: TestClient, doc_id: str) -> None:
    citation = Citation(1, doc_id, doc_id, f"{doc_id}.md", None, "", False, 1.0, "o", None, "")
    answer = Answer("q", "q", "a [1]", False, [citation], [])
    services(client).query_log.record(answer, Asker("x", admin=True), route="ask", latency_ms=1)


def report(client: TestClient, who: str) -> Any:
    response = client.get("/v1/conflicts", headers={"Authorization": f"Bearer {KEYS[who]}"})
    assert response.status_code == 200, response.text
    return response.json()


def pairs(found: Any) -> set[frozenset[str]]:
    return {frozenset((c["a"]["doc_id"], c["b"]["doc_id"])) for c in found["conflicts"]}


def test_values_in_different_words_normalise_to_the_same_amount() -> None:
    assert [v.amount for v in extract("a threshold of 0.90")] == [0.9]
    assert [v.amount for v in extract("a threshold of 90%")] == [0.9]
    assert extract("for 1 month")[0].amount == extract("for 30 days")[0].amount
    assert extract("GBP 1.5 million")[0].amount == extract("GBP 1,500,000")[0].amount


def test_different_values_for_the_same_detail_are_reported_side_by_side(
    client: TestClient,
) -> None:
    found = report(client, "admin")
    assert frozenset(("gateway-retention", "gateway-faq")) in pairs(found)
    conflict = next(
        c
        for c in found["conflicts"]
        if {c["a"]["doc_id"], c["b"]["doc_id"]} == {"gateway-retention", "gateway-faq"}
    )
    sentences = {conflict["a"]["sentence"], conflict["b"]["sentence"]}
    assert sentences == {
        "The Gateway keeps prompt logs for 30 days before deletion.",
        "The Gateway keeps prompt logs for 90 days before deletion.",
    }
    assert {conflict["a"]["title"], conflict["b"]["title"]} == {"Gateway retention", "Gateway FAQ"}
    assert "<duration>" in conflict["detail"]


def test_the_same_value_in_other_words_and_supersession_are_not_conflicts(
    client: TestClient,
) -> None:
    found = pairs(report(client, "admin"))
    assert frozenset(("gateway-retention", "gateway-faq")) in found  # the report ran
    assert frozenset(("nimbus-threshold", "nimbus-faq")) not in found
    assert frozenset(("orion-board-v1", "orion-board-v2")) not in found
    assert not any("orion-board-v1" in pair for pair in found)  # superseded: not current


def test_superseded_documents_still_cited_are_listed_with_count_and_successor(
    client: TestClient,
) -> None:
    found = report(client, "admin")
    cited = {u["doc_id"]: u for u in found["cited_superseded"]}
    assert list(cited) == ["orion-board-v1"]
    assert cited["orion-board-v1"]["cited_recently"] == 3
    assert cited["orion-board-v1"]["superseded_by"] == ["orion-board-v2"]
    assert cited["orion-board-v1"]["owner"] == "Old Owner"
    assert cited["orion-board-v1"]["successor_owner"] == "New Owner"
    assert [u["doc_id"] for u in found["missing_successor"]] == ["orphan-old"]


def test_a_spoke_never_sees_a_document_it_may_not_read(client: TestClient) -> None:
    restricted = "gateway-hr-notes"
    assert any(restricted in pair for pair in pairs(report(client, "admin")))
    assert any(restricted in pair for pair in pairs(report(client, "hr_spoke")))
    finance = report(client, "finance_spoke")
    assert frozenset(("gateway-retention", "gateway-faq")) in pairs(finance)
    assert restricted not in str(finance)
    response = client.get("/v1/conflicts", headers={"Authorization": f"Bearer {KEYS['reader']}"})
    assert response.status_code == 403
