"""Context assembly on fixed chunks: sections come whole within budgets, procedures whole,
tables with their header, documents take turns (assistant/context.py)."""

from __future__ import annotations

from collections.abc import Sequence

from assistant.context import ContextOptions, assemble
from index.hits import Hit

PLAYBOOK = [  # (section, text) of one document, in order
    ("", "Version 2 of the playbook replaces version 1."),
    ("Before you start", "Before you start\n- An accepted AI-01.\n- A named business owner."),
    ("Steps", "Steps\nStep 1: define the fields\nList the fields to extract."),
    ("Steps > Step 2: collect samples", "Step 2: collect samples\nCollect 500 samples per type."),
    ("Steps > Step 3: set thresholds", "Step 3: set thresholds\nAuto-accept at 0.90 or higher."),
    ("Steps > Step 4: shadow mode", "Step 4: shadow mode\nRun in shadow mode for 6 weeks."),
    ("Measures", "Measures\nMeasure | Target\nTouchless rate | at least 75%"),
    ("Measures", "Review queue time | 4 working hours\nCycle time | under 1 day"),
]


def _chunks(doc_id: str, rows: Sequence[tuple[str, str]], doc_type: str = "playbook") -> list[Hit]:
    return [
        Hit(
            chunk_id=f"{doc_id}:abc:{i:04d}",
            doc_id=doc_id,
            title=doc_id,
            path=f"{doc_id}.md",
            page=None,
            page_end=None,
            section=section,
            score=0.0,
            text=text,
            doc_type=doc_type,
            department="coe",
            owner="Owner",
            status="approved",
            chunk_index=i,
            review_date=None,
            is_stale=False,
        )
        for i, (section, text) in enumerate(rows)
    ]


BOOK = _chunks("playbook", PLAYBOOK)
FAQ = _chunks("faq", [("Samples", "How many samples? The playbook asks for 500 per type.")], "faq")
EVERYTHING = {h.chunk_id: h for h in [*BOOK, *FAQ]}


def _surroundings(hits: Sequence[Hit]) -> dict[str, list[Hit]]:
    """What the retriever's surroundings() gives: each hit's document neighbours in order."""
    return {
        h.chunk_id: [
            c
            for c in EVERYTHING.values()
            if c.doc_id == h.doc_id and abs(c.chunk_index - h.chunk_index) <= 12
        ]
        for h in hits
    }


def _ranked(*hits: Hit) -> list[Hit]:
    return [h.with_(score=1.0 - i / 10) for i, h in enumerate(hits)]


def test_a_step_brings_in_its_whole_procedure_in_document_order() -> None:
    sources = assemble(_ranked(BOOK[4]), _surroundings, ContextOptions())
    assert len(sources) == 1
    text = sources[0].text
    assert text.index("Step 1") < text.index("Step 2") < text.index("Step 3") < text.index("Step 4")
    assert "Before you start" not in text  # another section
    assert "Measure" not in text


def test_without_whole_steps_a_fact_in_one_step_brings_the_step() -> None:
    options = ContextOptions(section_words=15, procedure_words=100)
    fact = assemble(_ranked(BOOK[4]), _surroundings, options, whole_steps=False)
    assert "0.90" in fact[0].text
    assert "Step 1" not in fact[0].text  # the procedure (over section_words) stays out
    for steps in (
        assemble(_ranked(BOOK[4]), _surroundings, options),
        assemble(_ranked(BOOK[4]), _surroundings, options, procedure=True, whole_steps=False),
    ):
        assert "Step 1" in steps[0].text
        assert "Step 4" in steps[0].text


def test_a_procedure_question_reads_the_whole_procedure_beside_the_best_ranked_section() -> None:
    hits = _ranked(BOOK[0], BOOK[1], BOOK[3])
    plain = assemble(hits, _surroundings, ContextOptions(words=40))
    steps = assemble(hits, _surroundings, ContextOptions(words=40), procedure=True)
    assert "Step 4" not in plain[0].text  # the budget goes to the best-ranked sections
    assert "Step 1: define the fields" in steps[0].text
    assert "Step 4: shadow mode" in steps[0].text
    assert "replaces version 1" in steps[0].text  # the best-ranked chunk is never dropped


GUIDE = _chunks(
    "guide",
    [
        ("", "How we prepare data for a model."),
        ("Step-by-step > Step 1: inventory", "Step 1: inventory\nList every source and owner."),
        ("Step-by-step > Step 2: label", "Step 2: label\nWrite a labelling guide with examples."),
        ("Step-by-step > Step 3: split", "Step 3: split\nKeep a golden set of 200 items apart."),
        ("Checklist", "Checklist\n- [ ] Inventory\n- [ ] Labels\n- [ ] Golden set\n- [ ] Card"),
    ],
)


def test_the_best_ranked_step_comes_though_another_procedure_has_more_items() -> None:
    """ "We need people to label data, what's the process?" ranked the data playbook's
    "Step 8: label" first; its checklist (more list items) came as the procedure and the
    label step was dropped for the budget, so the answer quoted a marketing FAQ on labels."""
    by_id = {h.chunk_id: h for h in GUIDE}

    def surroundings(hits: Sequence[Hit]) -> dict[str, list[Hit]]:
        return {h.chunk_id: list(by_id.values()) for h in hits}

    options = ContextOptions(words=12, section_words=12, procedure_words=20)
    sources = assemble(_ranked(GUIDE[2]), surroundings, options, procedure=True)
    assert "labelling guide" in sources[0].text
    assert "- [ ] Golden set" in sources[0].text  # the procedure comes too


def test_a_section_over_budget_narrows_to_the_chunk_and_its_neighbours() -> None:
    sources = assemble(
        _ranked(BOOK[4]), _surroundings, ContextOptions(section_words=20, procedure_words=20)
    )
    text = sources[0].text
    assert "0.90" in text
    assert "Step 1" not in text


def test_a_table_comes_with_its_header_row() -> None:
    sources = assemble(_ranked(BOOK[7]), _surroundings, ContextOptions(section_words=8))
    text = sources[0].text
    assert "Measure | Target" in text
    assert text.index("Measure | Target") < text.index("Review queue time")


def test_documents_take_turns_before_second_sections() -> None:
    hits = _ranked(BOOK[0], BOOK[6], FAQ[0])
    sources = assemble(hits, _surroundings, ContextOptions(words=25, documents=4))
    assert [s.doc_id for s in sources] == ["playbook", "faq"]
    assert "Touchless" not in sources[0].text  # its second section did not fit after the FAQ
    assert "500 per type" in sources[1].text


def test_at_most_the_configured_number_of_documents() -> None:
    hits = _ranked(BOOK[0], FAQ[0])
    assert [s.doc_id for s in assemble(hits, _surroundings, ContextOptions(documents=1))] == [
        "playbook"
    ]


def test_sources_are_numbered_by_rank_and_keep_best_first_passages() -> None:
    hits = _ranked(FAQ[0], BOOK[7], BOOK[1])
    sources = assemble(hits, _surroundings, ContextOptions(section_words=12, words=200))
    assert [(s.n, s.doc_id) for s in sources] == [(1, "faq"), (2, "playbook")]
    first, second = sources[1].hits
    assert "Touchless" in (first.context or "")  # its best-ranked passage first
    assert "Before you start" in (second.context or "")


def test_the_best_document_stays_when_the_second_holds_the_procedure() -> None:
    # The second document's procedure comes whole, but never at the cost of the best one.
    hits = _ranked(FAQ[0], BOOK[3])
    sources = assemble(hits, _surroundings, ContextOptions(words=30), procedure=True)
    assert [s.doc_id for s in sources] == ["faq", "playbook"]
    assert "500 per type" in sources[0].text
    assert "Step 1" in sources[1].text
    assert "Step 4: shadow mode" in sources[1].text


def test_a_procedure_near_the_ranked_introduction_is_read() -> None:
    # "How do we deploy ...?" ranks the introduction; the steps a few chunks on come whole.
    plain = assemble(_ranked(BOOK[0]), _surroundings, ContextOptions())
    steps = assemble(_ranked(BOOK[0]), _surroundings, ContextOptions(), procedure=True)
    assert "Step 1" not in plain[0].text
    assert "Step 1" in steps[0].text
    assert "Step 4: shadow mode" in steps[0].text
