"""Citation checking on fixed answers and sources, with the real embedding model."""

from __future__ import annotations

from dataclasses import replace

import pytest

from assistant.citations import CheckOptions, check_citations, split_cited
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
    assert split_cited(answer) == [
        ("Prompts are kept 30 days.", [1]),
        ("Deflection is 34%.", [2]),
        ("1. First step", [1]),
        ("2. Then, e.g. this one", [2]),
    ]
    assert split_cited("Both apply [1, 2].") == [("Both apply.", [1, 2])]


def test_a_marker_without_a_full_stop_still_ends_its_sentence(
    embedder: SentenceTransformerEmbedder,
) -> None:
    # The local model's answer to the deployment question, steps on one line, no stops.
    answer = (
        "Step 1: prompts sent to KAIG are kept 30 days [1] Step 2: Ask Kestrel deflects 34% "
        "of contacts [2] Step 3: Ask Kestrel deflects 71% of contacts [2]"
    )
    assert split_cited(answer) == [
        ("Step 1: prompts sent to KAIG are kept 30 days", [1]),
        ("Step 2: Ask Kestrel deflects 34% of contacts", [2]),
        ("Step 3: Ask Kestrel deflects 71% of contacts", [2]),
    ]
    checked = check_citations(answer, SOURCES, embedder, OPTIONS)
    # One made-up number drops its own step, not the whole line; each step is a line.
    assert [s.text for s in checked.sentences] == [
        "Step 1: prompts sent to KAIG are kept 30 days",
        "Step 2: Ask Kestrel deflects 34% of contacts",
    ]
    assert [s.line for s in checked.sentences] == [0, 1]
    assert split_cited("See [1] and [2] for details.") == [("See and for details.", [1, 2])]


def test_a_sentence_citing_two_sources_may_draw_on_both(
    embedder: SentenceTransformerEmbedder,
) -> None:
    answer = (
        "Prompts sent to KAIG are kept for 30 days, while Ask Kestrel deflects 34% of customer "
        "contacts. [1] [2]"
    )
    checked = check_citations(answer, SOURCES, embedder, OPTIONS)
    assert [(s.text, s.sources) for s in checked.sentences] == [
        (answer.removesuffix(" [1] [2]"), [1, 2])
    ]
    assert 0.55 <= checked.sentences[0].support <= 1.0
    one_marker = answer.replace("[1] [2]", "[1]")  # the model cited only one of the two
    assert [
        s.sources for s in check_citations(one_marker, SOURCES, embedder, OPTIONS).sentences
    ] == [[1, 2]]
    made_up = answer.replace("34%", "71%")  # a number neither source has
    assert check_citations(made_up, SOURCES, embedder, OPTIONS).sentences == []


def test_a_projects_metadata_in_the_heading_supports_a_sentence(
    embedder: SentenceTransformerEmbedder,
) -> None:
    hit = replace(
        _hit("ap-review", "Touchless matching rose from 38% to 81% in the first year."),
        title="AP Invoice Matching: lessons learned",
        department="finance",
        project="AP Invoice Matching",
        vendor="DocuSift",
        outcome="success",
        year=2025,
    )
    line = "AP Invoice Matching (finance, DocuSift, success, 2025) [1]"
    checked = check_citations(line, [Source(1, (hit,))], embedder, OPTIONS)
    assert [s.sources for s in checked.sentences] == [[1]], checked.dropped


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
    assert [_page(s.chunks[2]) for s in checked.sentences] == [3, 7]
    assert checked.dropped == []
    assert checked.reattributed == 0


def test_a_sentence_is_placed_in_the_chunk_it_comes_from_not_its_passages_best(
    embedder: SentenceTransformerEmbedder,
) -> None:
    """Context assembly joins neighbouring chunks into one passage labelled with its
    best-ranked chunk; the checker names the chunk that holds the supporting sentence."""
    step = replace(
        _hit("playbook", "11. Go live: the ARB approves the launch.", page=4, index=7),
        section="Steps > Step 11",
    )
    after = replace(
        _hit("playbook", "After go-live, sample 2% of documents every week.", page=5, index=8),
        section="Quality assurance after go-live",
    )
    passage = step.with_(context=f"{step.text}\n{after.text}")
    source = Source(1, (passage,), chunks=(step, after))
    checked = check_citations(
        "Sample 2% of documents every week after go-live [1].", [source], embedder, OPTIONS
    )
    (sentence,) = checked.sentences
    assert sentence.chunks[1] == after
    alone = Source(1, (passage,))  # no chunks known: the passage itself
    (sentence,) = check_citations(
        "Sample 2% of documents every week after go-live [1].", [alone], embedder, OPTIONS
    ).sentences
    assert sentence.chunks[1] == passage


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


def test_a_paragraph_cited_once_at_its_end_cites_every_sentence(
    embedder: SentenceTransformerEmbedder,
) -> None:
    checked = check_citations(
        "Ask Kestrel deflects 34% of customer contacts. CSAT stayed at 4.3 out of 5 after "
        "launch. [2]",
        SOURCES,
        embedder,
        OPTIONS,
    )
    assert [(s.sources, s.claimed) for s in checked.sentences] == [([2], [2]), ([2], [2])]
    assert [_page(s.chunks[2]) for s in checked.sentences] == [3, 7]


def test_the_claimed_source_wins_over_an_equally_supporting_one(
    embedder: SentenceTransformerEmbedder,
) -> None:
    """Two documents saying the same thing (two editions of a plan): the sentence keeps the
    source its paragraph cites, rather than whichever scores a hair higher."""
    same = "Prompts sent to KAIG are kept for 30 days and then deleted."
    sources = [Source(1, (_hit("faq-2024", same),)), Source(2, (_hit("faq-2025", same),))]
    checked = check_citations(
        "Prompts sent to KAIG are kept for 30 days. They are then deleted [2].",
        sources,
        embedder,
        OPTIONS,
    )
    assert [s.sources for s in checked.sentences] == [[2], [2]]
    assert checked.reattributed == 0


def test_a_marker_closes_only_its_own_paragraph(embedder: SentenceTransformerEmbedder) -> None:
    checked = check_citations(
        "Ask Kestrel deflects 34% of customer contacts.\nPrompts are kept for 30 days [1].",
        SOURCES,
        embedder,
        OPTIONS,
    )
    assert [(s.sources, s.claimed) for s in checked.sentences] == [([2], []), ([1], [1])]


def test_an_uncited_sentence_goes_to_the_higher_ranked_of_two_equal_sources(
    embedder: SentenceTransformerEmbedder,
) -> None:
    sources = [
        Source(1, (_hit("plan-plus", "Prompts sent to KAIG are kept for 30 days, then deleted."),)),
        Source(2, (_hit("plan-basic", "Prompts sent to KAIG are kept for 30 days then deleted."),)),
    ]
    answer = "Prompts sent to KAIG are kept for 30 days then deleted."
    support = [check_citations(f"{answer} [{n}]", sources, embedder, OPTIONS) for n in (1, 2)]
    assert support[1].sentences[0].support > support[0].sentences[0].support  # [2] is verbatim
    checked = check_citations(answer, sources, embedder, OPTIONS)
    assert checked.sentences[0].sources == [1]
    far_apart = CheckOptions(tie_margin=0.0)
    assert check_citations(answer, sources, embedder, far_apart).sentences[0].sources == [2]


@pytest.mark.parametrize(
    "sentence",
    [
        "Prompts sent to KAIG are kept for 90 days and then deleted [1].",  # a wrong number
        "Prompts sent to the Platinum KAIG are kept for 30 days [1].",  # a name not in it
    ],
)
def test_a_sentence_whose_numbers_or_names_no_source_has_is_dropped(
    embedder: SentenceTransformerEmbedder, sentence: str
) -> None:
    checked = check_citations(sentence, SOURCES, embedder, OPTIONS)
    assert checked.sentences == []
    assert len(checked.dropped) == 1


def test_names_are_runs_of_capitalised_words_inside_a_sentence_and_numbers() -> None:
    from assistant.citations import names_in

    assert names_in("1. Ask the Northwind Platinum desk: Before noon, 40% of Claims.") == {
        "northwind platinum",
        "40%",
        "claim",
    }
    assert names_in("How do I reach Contoso's Technical Product Marketing team?") == {
        "contoso",
        "technical product marketing",
    }


def test_a_name_is_matched_whole_not_word_by_word(embedder: SentenceTransformerEmbedder) -> None:
    roles = Source(
        1,
        (
            _hit(
                "roles",
                "The Manager of Product Marketing leads launches. The Technical Writer "
                "documents products.",
            ),
        ),
    )
    kept = check_citations(
        "The Manager of Product Marketing leads launches [1].", [roles], embedder, OPTIONS
    )
    assert len(kept.sentences) == 1
    made_up = check_citations(
        "The Manager of Technical Product Marketing leads launches [1].", [roles], embedder, OPTIONS
    )
    assert made_up.sentences == []


def test_a_sentence_repeated_word_for_word_is_kept_once(
    embedder: SentenceTransformerEmbedder,
) -> None:
    checked = check_citations(
        "- Prompts are kept for 30 days [1].\n- CSAT stayed at 4.3 [2].\n"
        "- Prompts are kept for 30 days [1].",
        SOURCES,
        embedder,
        OPTIONS,
    )
    assert [s.text for s in checked.sentences] == [
        "- Prompts are kept for 30 days.",
        "- CSAT stayed at 4.3.",
    ]


def test_an_ellipsis_copied_from_an_excerpt_is_not_a_sentence() -> None:
    assert split_cited("Tips: [1]\n...\n- Ask first [2].\n[3]") == [
        ("Tips:", [1]),
        ("- Ask first.", [2, 3]),
    ]


def _page(chunk: Hit | None) -> int | None:
    return chunk.page if chunk else None
