"""The query log on a real SQLite file: answers, feedback, document use, knowledge gaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.querylog import Asker, FeedbackReason, QueryLog, Rating
from assistant.service import Answer, Citation
from index.errors import NotFoundError


def citation(n: int, doc_id: str, *, stale: bool = False) -> Citation:
    return Citation(
        n=n,
        doc_id=doc_id,
        title=doc_id.title(),
        path=f"{doc_id}.md",
        page=None,
        section="",
        stale=stale,
        support=0.8,
        owner="Owner",
        review_date=None,
        link=f"/v1/documents/{doc_id}/source",
    )


def answered(question: str, *docs: str) -> Answer:
    return Answer(question, question, "text [1]", False, [citation(1, d) for d in docs], [])


def refused(question: str, nearby: str | None = None) -> Answer:
    answer = Answer(question, question, "I don't know.", True, [], [])
    answer.refusal_reason = "no relevant source"
    answer.nearby = [{"doc_id": nearby, "title": nearby}] if nearby else []
    return answer


ALICE = Asker("alice", ("finance",))
BOB = Asker("bob")
ADMIN = Asker("root", admin=True)


@pytest.fixture
def log(tmp_path: Path) -> QueryLog:
    return QueryLog(tmp_path / "queries.sqlite")


def test_document_use_counts_answers_and_thumbs_down(log: QueryLog) -> None:
    first = answered("q1", "faq", "policy")
    second = answered("q2", "faq")
    for answer in (first, second, answered("q3", "policy")):
        log.record(answer, ALICE, route="ask", latency_ms=12.5)
    log.add_feedback(first.answer_id, ALICE, Rating.DOWN, FeedbackReason.OUTDATED, "old")
    log.add_feedback(first.answer_id, ALICE, Rating.DOWN, FeedbackReason.WRONG_SOURCE)
    log.add_feedback(second.answer_id, ALICE, Rating.UP)
    use = log.document_use(["faq", "policy", "never-cited"])
    assert (use["faq"].cited, use["faq"].thumbs_down) == (2, 1)
    assert (use["policy"].cited, use["policy"].thumbs_down) == (2, 1)
    assert (use["never-cited"].cited, use["never-cited"].thumbs_down) == (0, 0)


def test_feedback_belongs_to_whoever_got_the_answer(log: QueryLog) -> None:
    answer = answered("q", "faq")
    log.record(answer, ALICE, route="ask", latency_ms=1)
    with pytest.raises(NotFoundError, match="answer_id"):
        log.add_feedback(answer.answer_id, BOB, Rating.DOWN)
    with pytest.raises(NotFoundError):
        log.add_feedback("no-such-answer", ALICE, Rating.DOWN)
    assert log.document_use(["faq"])["faq"].thumbs_down == 0  # neither was recorded
    log.add_feedback(answer.answer_id, ADMIN, Rating.DOWN, FeedbackReason.INCOMPLETE)
    assert log.document_use(["faq"])["faq"].thumbs_down == 1


def test_gaps_group_the_same_question_and_rank_by_times_asked(log: QueryLog) -> None:
    log.record(refused("What is the canteen menu?"), ALICE, route="ask", latency_ms=1)
    log.record(refused("Who won the 2019 bake-off?", "hr-faq"), BOB, route="ask", latency_ms=1)
    log.record(refused("what is the  canteen MENU"), BOB, route="chat", latency_ms=1)
    log.record(answered("How do I file expenses?", "faq"), BOB, route="ask", latency_ms=1)
    gaps = log.gaps()
    assert [(g.question, g.times_asked) for g in gaps] == [
        ("what is the  canteen MENU", 2),
        ("Who won the 2019 bake-off?", 1),
    ]
    assert gaps[1].nearby == ["hr-faq"]
    assert gaps[0].reasons == ["no relevant source"]
    assert log.gaps(limit=1) == gaps[:1]


def test_the_log_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "queries.sqlite"
    first = QueryLog(path)
    first.record(answered("q", "faq"), ALICE, route="ask", latency_ms=1)
    first.close()
    assert QueryLog(path).document_use()["faq"].cited == 1
