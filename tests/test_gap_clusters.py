"""The gap report as a backlog (assistant/gap_clusters.py): questions refused through the real
API (real store, real embedding model, extractive generator) are clustered by topic; the
nearest documents respect the caller's access; the query log's added column keeps older logs
readable."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.assembly import build_embedder, build_gap_clusters, build_ingester, build_store
from api.keys import KeyStore, Role
from api.settings import Settings
from assistant.gap_clusters import UNASSIGNED, GapClusterReport, agglomerate
from assistant.querylog import Asker, QueryLog
from assistant.service import Answer
from index.embedding import SentenceTransformerEmbedder
from index.filters import Principal
from tests.conftest import markdown, write
from tests.serving import services

RESTRICTED = "parental-leave-draft"
RESTRICTED_TITLE = "Parental leave policy draft"
# Three topics the public documents do not cover, asked by different keys. Listed in the order
# they are asked: the smallest topic first, so ordering by count is not ordering by time.
GPU = [
    "How do I book time on the GPU cluster for model training?",
    "Where can I reserve GPUs to fine-tune a model?",
    "what's the process to get GPU compute for training jobs",
]
LEAVE = [
    "How many weeks of parental leave do new parents get?",
    "What is our maternity and paternity leave entitlement?",
    "how long can I take off work after having a baby",
    "Is parental leave paid, and for how many weeks?",
    "how many weeks of parental leave do new parents get",  # the first again, typed otherwise
]
TRAVEL = [
    "Can I claim conference travel expenses back?",
    "How do I get reimbursed for flights and hotels for a conference?",
    "what is the policy for expensing a trip to an industry event",
    "Who approves travel costs for attending a conference?",
]
KEYS: dict[str, str] = {}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    corpus = tmp_path_factory.mktemp("corpus")
    write(
        corpus / "coe" / "intake.md",
        markdown("intake", "# AI intake\n\nSubmit the AI-01 form; triage takes 10 working days."),
    )
    write(
        corpus / "it" / "gateway.md",
        markdown("gateway", "# Gateway FAQ\n\nThe gateway keeps prompts for 90 days."),
    )
    write(  # readable by hr only: near the leave questions, which finance asks and is refused
        corpus / "hr" / "leave.md",
        markdown(
            RESTRICTED,
            "# Parental leave\n\nNew parents get 26 weeks of paid parental leave; partners get "
            "4 weeks. Leave can start up to 11 weeks before the due date.",
            title=RESTRICTED_TITLE,
            access=["hr"],
        ),
    )
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        corpus_dir=corpus,
        today="2026-11-28",
        generator="extractive",
        serve_threads=2,  # torch threads are process-wide: leave the other tests theirs
        rate_limit_per_minute=0,
    )
    store = build_store(settings)
    build_ingester(settings, store, build_embedder(settings)).sync(corpus)
    keys = KeyStore(settings.keys_path)
    KEYS.update(
        admin=keys.create("admin", Role.ADMIN),
        finance=keys.create("finance spoke", Role.SPOKE, ["finance"]),
        it=keys.create("it spoke", Role.SPOKE, ["it"]),
        hr=keys.create("hr spoke", Role.SPOKE, ["hr"]),
        reader=keys.create("reader", Role.READER, ["it"]),
    )
    keys.close()
    with TestClient(create_app(settings)) as test_client:
        asked = [
            *(("it", q) for q in GPU),
            *(("finance", q) for q in LEAVE),
            *(("it" if i % 2 else "admin", q) for i, q in enumerate(TRAVEL)),
        ]
        for who, question in asked:
            response = test_client.post("/v1/ask", json={"question": question}, headers=as_(who))
            assert response.json()["refused"], question  # the event first: each was refused
        yield test_client


def as_(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[who]}"}


def report(client: TestClient, principal: Principal) -> GapClusterReport:
    return services(client).gap_clusters.report(principal)


def topic_of(question: str) -> str:
    return next(name for name, qs in TOPICS.items() if question in qs)


TOPICS = {"gpu": GPU, "leave": LEAVE, "travel": TRAVEL}


def test_refused_questions_come_back_as_one_cluster_per_topic_largest_first(
    client: TestClient,
) -> None:
    found = report(client, Principal.of(admin=True))
    assert found.answers == 12
    assert [topic_of(c.label) for c in found.clusters] == ["leave", "travel", "gpu"]
    counts = [
        (c.questions, c.distinct_questions, c.refused, c.low_confidence, c.askers)
        for c in found.clusters
    ]
    assert counts == [(5, 4, 5, 0, 1), (4, 4, 4, 0, 2), (3, 3, 3, 0, 1)]
    for cluster in found.clusters:
        topic = topic_of(cluster.label)
        assert len(cluster.examples) == 3
        assert {topic_of(q) for q in cluster.examples} == {topic}
        assert cluster.first_asked <= cluster.last_asked
    leave, travel, gpu = found.clusters
    assert leave.examples[0].lower().startswith("how many weeks of parental leave")  # asked twice
    assert [(d.department, d.questions) for d in leave.departments] == [("finance", 5)]
    assert [(d.department, d.questions) for d in travel.departments] == [
        ("it", 2),
        (UNASSIGNED, 2),
    ]
    assert [(d.department, d.questions) for d in gpu.departments] == [("it", 3)]


def test_the_same_log_gives_the_same_clusters(
    client: TestClient, embedder: SentenceTransformerEmbedder
) -> None:
    admin = Principal.of(admin=True)
    assert report(client, admin) == report(client, admin)
    questions = GPU + LEAVE[:4] + TRAVEL
    vectors = embedder.embed(questions)
    groups = agglomerate(vectors, services(client).gap_clusters.options.distance_threshold)
    assert sorted(sorted(questions[i] for i in g) for g in groups) == sorted(
        sorted(qs) for qs in (GPU, LEAVE[:4], TRAVEL)
    )
    order = np.random.default_rng(7).permutation(len(questions))
    shuffled = agglomerate(vectors[order], services(client).gap_clusters.options.distance_threshold)
    assert sorted(sorted(questions[order[i]] for i in g) for g in shuffled) == sorted(
        sorted(questions[i] for i in g) for g in groups
    )


def test_nearest_documents_name_only_what_the_caller_may_read(client: TestClient) -> None:
    for principal in (Principal.of(admin=True), Principal.of("hr")):
        leave = report(client, principal).clusters[0]
        assert topic_of(leave.label) == "leave"
        assert leave.nearest[0].doc_id == RESTRICTED  # those who may read it are shown it
        assert leave.nearest[0].title == RESTRICTED_TITLE
    finance = report(client, Principal.of("finance"))
    assert [topic_of(c.label) for c in finance.clusters] == ["leave", "travel", "gpu"]
    named = [d.doc_id for c in finance.clusters for d in c.nearest]
    assert sorted(set(named)) == ["gateway", "intake"]

    admin_body = client.get("/v1/gaps?clusters=true", headers=as_("admin")).text
    assert RESTRICTED in admin_body
    spoke_body = client.get("/v1/gaps?clusters=true", headers=as_("finance")).text
    assert RESTRICTED not in spoke_body
    assert RESTRICTED_TITLE not in spoke_body


def test_the_route_serves_clusters_and_keeps_the_default_report(client: TestClient) -> None:
    assert client.get("/v1/gaps?clusters=true", headers=as_("reader")).status_code == 403
    response = client.get("/v1/gaps", params={"clusters": "true", "limit": 2}, headers=as_("it"))
    assert response.status_code == 200
    body = response.json()
    assert body["answers"] == 12
    assert [(c["questions"], c["refused"]) for c in body["clusters"]] == [(5, 5), (4, 4)]
    assert len(body["clusters"][0]["examples"]) == 3
    assert body["low_confidence_below"] == pytest.approx(0.45)

    default = client.get("/v1/gaps", headers=as_("it")).json()
    assert isinstance(default, list)
    assert set(default[0]) == {"question", "times_asked", "last_asked", "reasons", "nearby"}
    assert default[0]["times_asked"] == 2  # the leave question asked twice


OLD_ANSWERS = """
CREATE TABLE answers (
    answer_id TEXT PRIMARY KEY, at TEXT NOT NULL, asker TEXT NOT NULL, groups TEXT NOT NULL,
    route TEXT NOT NULL, question TEXT NOT NULL, standalone TEXT NOT NULL,
    refused INTEGER NOT NULL, refusal_reason TEXT, cited TEXT NOT NULL,
    stale_cited INTEGER NOT NULL, nearby TEXT NOT NULL, generator TEXT NOT NULL,
    latency_ms REAL NOT NULL
);
INSERT INTO answers VALUES ('old-1', '2026-11-01T09:00:00+00:00', 'k1', '["finance"]', 'ask',
    'Where do I book GPUs?', 'Where do I book GPUs?', 1, 'no relevant source', '[]', 0, '[]',
    'extractive', 12.0);
INSERT INTO answers VALUES ('old-2', '2026-11-01T10:00:00+00:00', 'k1', '["finance"]', 'ask',
    'How long are prompts kept?', 'How long are prompts kept?', 0, NULL, '["gateway"]', 0, '[]',
    'extractive', 12.0);
"""


def answered(question: str, relevance: float) -> Answer:
    return Answer(question, question, "text", False, [], [], relevance=relevance)


def test_an_older_log_stays_readable_and_weak_answers_count_as_low_confidence(
    client: TestClient, embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    path = tmp_path / "queries.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_ANSWERS)
    log = QueryLog(path)
    asker = Asker("k2", ("it",))
    for question, relevance in [
        ("How long does the gateway keep my prompts?", 0.42),
        ("How many days are gateway prompts kept?", 0.43),
        ("What does the gateway keep, and how long?", 0.80),  # confident: not a gap
    ]:
        log.record(answered(question, relevance), asker, route="ask", latency_ms=5.0)
    read = log.gap_questions(weak_below=0.45)
    assert [(q.question, q.refused, q.relevance) for q in read] == [
        ("Where do I book GPUs?", True, None),  # an older row: refused, relevance unknown
        ("How long does the gateway keep my prompts?", False, 0.42),
        ("How many days are gateway prompts kept?", False, 0.43),
    ]

    live = services(client)
    settings = Settings(data_dir=tmp_path / "data", today="2026-11-28")
    clusters = build_gap_clusters(settings, live.store, log, embedder)
    found = clusters.report(Principal.of("it"))
    assert [(c.questions, c.refused, c.low_confidence) for c in found.clusters] == [
        (2, 0, 2),
        (1, 1, 0),
    ]
    assert found.clusters[0].nearest[0].doc_id == "gateway"
    log.close()


def test_the_default_gap_report_names_only_documents_the_caller_may_read(
    client: TestClient,
) -> None:
    """The log keeps what the asker's retrieval found nearby; an hr refusal near the hr-only
    document must not show that document to a finance spoke."""
    asked = "When does the leave policy change?"
    answer = Answer(asked, asked, "", True, [], [])
    answer.nearby = [
        {"doc_id": RESTRICTED, "title": RESTRICTED_TITLE},
        {"doc_id": "gateway", "title": "Gateway FAQ"},
    ]
    services(client).query_log.record(answer, Asker("hr", ("hr",)), route="ask", latency_ms=1)

    def nearby(who: str) -> list[str]:
        response = client.get("/v1/gaps", headers=as_(who))
        assert response.status_code == 200
        (gap,) = [g for g in response.json() if g["question"] == answer.question]
        return gap["nearby"]

    assert nearby("hr") == [RESTRICTED, "gateway"]  # recorded as the asker found them
    assert nearby("admin") == [RESTRICTED, "gateway"]
    assert nearby("finance") == ["gateway"]
