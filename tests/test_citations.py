"""Citation checking on fixed answers and sources, with the real embedding model."""

from __future__ import annotations

import pytest

from assistant.citations import CheckOptions, check_citations, split_sentences
from assistant.sources import Source
from index.embedding import SentenceTransformerEmbedder
from index.hits import Hit

OPTIONS = CheckOptions()


def _hit(doc_id: str, text: str, page: int | None = None, index: int = 0) -> Hit:
    return Hit(
        chunk_id=f"{doc_id}:abc:{index:04d}",
        doc_id=doc_id,
        title=doc_id.title(),
        path=f"{doc_id}.md",
        page=page,
        page_end=page,
        section="",
        score=1.0,
        text=text,
        doc_type="faq",
        department="coe",
        owner="Owner",
        status="approved",
        chunk_index=index,
        review_date=None,
        is_stale=False,
    )


SOURCES = [
    Source(1, (_hit("retention", "Prompts sent to KAIG are kept for 30 days and then deleted."),)),
    Source(
        2,
        (
            _hit("chatbot", "Ask Kestrel deflects 34% of customer contacts.", page=3, index=0),
            _hit("chatbot", "CSAT stayed at 4.3 out of 5 after launch.", page=7, index=4),
        ),
    ),
]


def test_split_keeps_markers_with_their_sentence() -> None:
    answer = (
        "Prompts are kept 30 days [1]. Deflection is 34%. [2]\n"
        "1. First step [1]\n2. Then, e.g. this one [2]"
    )
    assert split_sentences(answer) == [
        ("Prompts are kept 30 days.", [1]),
        ("Deflection is 34%.", [2]),
        ("1. First step", [1]),
        ("2. Then, e.g. this one", [2]),
    ]
    assert split_sentences("Both apply [1, 2].") == [("Both apply.", [1, 2])]


def test_correct_citations_are_kept_with_the_supporting_page(
    embedder: SentenceTransformerEmbedder,
) -> None:
    checked = check_citations(
        "The chatbot deflects 34% of contacts [2]. CSAT stayed at 4.3 [2].",
        SOURCES,
        embedder,
        OPTIONS,
    )
    assert [s.sources for s in checked.sentences] == [[2], [2]]
    assert [s.pages[2] for s in checked.sentences] == [3, 7]
    assert checked.dropped == []
    assert checked.reattributed == 0


def test_a_wrong_citation_moves_to_the_source_that_supports_it(
    embedder: SentenceTransformerEmbedder,
) -> None:
    checked = check_citations("Prompts are kept for 30 days [2].", SOURCES, embedder, OPTIONS)
    assert checked.sentences[0].sources == [1]
    assert checked.sentences[0].claimed == [2]
    assert checked.reattributed == 1


def test_an_unsupported_sentence_is_dropped(embedder: SentenceTransformerEmbedder) -> None:
    checked = check_citations(
        "Prompts are kept for 30 days [1]. The CEO approved a GBP 2 million budget in 2023 [1].",
        SOURCES,
        embedder,
        OPTIONS,
    )
    assert [s.text for s in checked.sentences] == ["Prompts are kept for 30 days."]
    assert [s.text for s in checked.dropped] == ["The CEO approved a GBP 2 million budget in 2023."]


def test_uncited_support_gains_a_citation_and_connectives_need_none(
    embedder: SentenceTransformerEmbedder,
) -> None:
    checked = check_citations(
        "Here is what I found:\nAsk Kestrel deflects 34% of customer contacts.",
        SOURCES,
        embedder,
        OPTIONS,
    )
    assert [(s.text, s.sources) for s in checked.sentences] == [
        ("Here is what I found:", []),
        ("Ask Kestrel deflects 34% of customer contacts.", [2]),
    ]


@pytest.mark.parametrize("marker", ["[7]", "[0]"])
def test_citations_to_missing_sources_are_not_trusted(
    embedder: SentenceTransformerEmbedder, marker: str
) -> None:
    checked = check_citations(f"Prompts are kept for 30 days {marker}.", SOURCES, embedder, OPTIONS)
    assert checked.sentences[0].sources == [1]


def test_a_fragment_cut_off_by_the_token_limit_is_dropped(
    embedder: SentenceTransformerEmbedder,
) -> None:
    checked = check_citations(
        "Prompts sent to KAIG are kept for 30 days [1].\nBy", SOURCES, embedder, OPTIONS
    )
    assert [s.text for s in checked.sentences] == ["Prompts sent to KAIG are kept for 30 days."]
