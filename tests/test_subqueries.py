"""Searches beside the question's own (assistant/subqueries.py): a comparison's parts, a
question about earlier work among the project documents, each reaching the sources."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from assistant.context import ContextOptions
from assistant.generators import ExtractiveGenerator
from assistant.service import Assistant, AssistantOptions
from assistant.subqueries import ordered, parts
from index.embedding import SentenceTransformerEmbedder
from index.filters import Principal, SearchFilters
from index.hits import Hit
from index.hybrid import HybridRetriever
from index.keyword import KeywordIndex, Tokenizer
from ingest.sync import Ingester
from tests.conftest import drop_store, markdown, new_store, write
from tests.test_context import _chunks

TODAY = dt.date(2026, 11, 28)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (
            "How do the build costs of the HR Policy Assistant and Deal Notes compare?",
            ["How do the build costs of the HR Policy Assistant", "Deal Notes compare"],
        ),
        (
            "payback: AP invoice matching vs ClauseCheck?",
            ["payback: AP invoice matching", "ClauseCheck"],
        ),
        ("rates in the UK, Poland and Mexico", ["rates in the UK", "Poland", "Mexico"]),
        ("KAIG versus Kestrel Local", ["KAIG", "Kestrel Local"]),
        ("How do we deploy document processing?", []),  # nothing to divide
        ("what do you say and what do they say", []),  # no part has a subject
        (
            "rates in the UK, Poland, Spain, Italy and Mexico",
            [],
        ),  # a list, not a comparison of named things
    ],
)
def test_parts_of_a_comparison(question: str, expected: list[str]) -> None:
    assert parts(question) == expected


def _hit(doc: str, i: int) -> Hit:
    """The i-th chunk of a document `doc` (context assembly's fixed chunks)."""
    return _chunks(doc, [("", f"{doc} {n}") for n in range(i + 1)])[i]


def test_each_search_leads_with_its_best_document_after_the_main_one() -> None:
    main = [_hit("a", 0), _hit("b", 0), _hit("a", 1), _hit("c", 0)]
    first = [_hit("a", 2), _hit("d", 0)]  # already led by the main search: adds nothing new
    second = [_hit("e", 0), _hit("e", 1), _hit("b", 3)]
    merged = ordered(main, [first, second])
    docs = list(dict.fromkeys(h.doc_id for h in merged))
    assert docs == ["a", "e", "b", "c", "d"]
    ids = [h.chunk_id for h in merged]
    assert len(ids) == len(set(ids))  # a chunk found twice is listed once
    # Within a document, the main search's hits first.
    assert [h.chunk_id for h in merged if h.doc_id == "a"] == [
        "a:abc:0000",
        "a:abc:0001",
        "a:abc:0002",
    ]
    assert [h.chunk_id for h in merged if h.doc_id == "b"] == ["b:abc:0000", "b:abc:0003"]
    assert ordered(main, []) == main
    # A following search (among the projects) leads with nothing: it adds chunks to the
    # documents found, and its new documents after them.
    docs = list(dict.fromkeys(h.doc_id for h in ordered(main, [], [second])))
    assert docs == ["a", "b", "c", "e"]


@pytest.fixture(scope="module")
def retriever(
    tmp_path_factory: pytest.TempPathFactory,
    chroma_client: Any,
    embedder: SentenceTransformerEmbedder,
) -> Iterator[HybridRetriever]:
    """Three documents on the HR Policy Assistant's costs, one on Deal Notes'; a playbook and a
    FAQ that talk about OCR at length, and one lessons-learned document on an OCR project."""
    root = tmp_path_factory.mktemp("kb")
    for n, kind in enumerate(["showcase", "faq", "playbook"]):
        write(
            root / f"hr{n}.md",
            markdown(
                f"hr-assistant-{kind}",
                f"# HR Policy Assistant {kind}\n\n## Costs\n\nThe HR Policy Assistant cost "
                f"GBP {40 + n},000 to build; its build costs were mostly integration work.\n",
                doc_type=kind,
            ),
        )
    write(
        root / "deal.md",
        markdown(
            "deal-notes-review",
            "# Deal Notes pilot review\n\n## Outcome\n\nDeal Notes was built for GBP 95,000, "
            "most of it prompt engineering for the sales team.\n",
            doc_type="lessons_learned",
        ),
    )
    write(
        root / "ocr-playbook.md",
        markdown(
            "ocr-playbook",
            "# OCR playbook\n\n## Using OCR\n\nOCR turns scans into text. Try OCR on clean "
            "scans first; OCR quality depends on the scanner. Everyone can use OCR.\n",
        ),
    )
    write(
        root / "ocr-faq.md",
        markdown(
            "ocr-faq",
            "# OCR FAQ\n\n## Can I try OCR?\n\nYes: anyone can try OCR through the scanning "
            "service. OCR output needs checking.\n",
            doc_type="faq",
        ),
    )
    write(
        root / "receipts.md",
        markdown(
            "receipt-scanning-lessons",
            "# Expense receipt scanning: lessons learned\n\n## What happened\n\nFinance "
            "piloted reading receipts with a text-recognition tool in 2024 and stopped it: "
            "crumpled receipts were misread.\n",
            doc_type="lessons_learned",
            department="finance",
        ),
    )
    store = new_store(chroma_client)
    Ingester(store, embedder).sync(root)
    yield HybridRetriever(store, embedder, KeywordIndex(store, None, Tokenizer()))
    drop_store(chroma_client, store)


def _sources(
    retriever: HybridRetriever,
    embedder: SentenceTransformerEmbedder,
    question: str,
    *,
    subqueries: bool,
    filters: SearchFilters | None = None,
) -> list[str]:
    options = AssistantOptions(subqueries=subqueries, context=ContextOptions(documents=2))
    assistant = Assistant(
        retriever, ExtractiveGenerator(embedder), embedder, today=lambda: TODAY, options=options
    )
    context = assistant.prepare(question, principal=Principal(), filters=filters)
    return [s.best.doc_id for s in context.sources]


def test_each_thing_compared_reaches_the_sources(
    retriever: HybridRetriever, embedder: SentenceTransformerEmbedder
) -> None:
    question = "How do the build costs of the HR Policy Assistant and Deal Notes compare?"
    without = _sources(retriever, embedder, question, subqueries=False)
    assert "deal-notes-review" not in without  # crowded out by the HR Policy Assistant's three
    found = _sources(retriever, embedder, question, subqueries=True)
    assert found[0] == without[0]  # the main search keeps its lead
    assert "deal-notes-review" in found


def test_a_question_about_earlier_work_reads_the_project_documents(
    retriever: HybridRetriever, embedder: SentenceTransformerEmbedder
) -> None:
    question = "has anyone tried OCR before? what happened"
    without = _sources(retriever, embedder, question, subqueries=False)
    assert "receipt-scanning-lessons" not in without
    assert "receipt-scanning-lessons" in _sources(retriever, embedder, question, subqueries=True)
    # Filters still hold: a department with no project document adds none.
    within = SearchFilters(departments=("coe",))
    assert "receipt-scanning-lessons" not in _sources(
        retriever, embedder, question, subqueries=True, filters=within
    )
