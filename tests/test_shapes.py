"""Answer shapes: chosen from the question and its sources (assistant/shapes.py), and built
without an LLM by the extractive composer (assistant/extractive.py)."""

from __future__ import annotations

import pytest

from assistant.extractive import ExtractiveGenerator, quotable, steps_of
from assistant.shapes import INSTRUCTIONS, Shape, compared, instruction, question_shape
from assistant.sources import Source
from index.embedding import SentenceTransformerEmbedder
from tests.test_context import BOOK, _chunks


@pytest.mark.parametrize(
    ("question", "types", "shape"),
    [
        ("How do we deploy document processing?", ["playbook"], Shape.PROCEDURE),
        ("how do we deploy document processing", ["playbook"], Shape.PROCEDURE),
        ("  HOW DO WE DEPLOY  document processing ?! ", ["playbook"], Shape.PROCEDURE),
        ("Walk me through the review steps", ["playbook"], Shape.PROCEDURE),
        ("Has anyone tried using AI to screen CVs?", ["lessons_learned"], Shape.PROJECTS),
        ("did anyone build a chatbot for customers already", ["showcase"], Shape.PROJECTS),
        ("Has anyone tried using AI to screen CVs?", ["faq", "policy"], Shape.FACT),
        (
            "What was the cost of AP matching versus Ask Kestrel?",
            ["lessons_learned"],
            Shape.COMPARISON,
        ),
        ("Is the deflection rate 34% or 41%? I've seen both.", ["faq"], Shape.COMPARISON),
        ("What changed between version 1 and version 2?", ["playbook"], Shape.COMPARISON),
        ("What is the daily token allowance in KAIG Chat", ["faq"], Shape.FACT),
        ("What's the daily token allowance? I've seen different numbers.", [], Shape.COMPARISON),
        ("How is the v2 playbook different from v1?", ["playbook"], Shape.COMPARISON),
        ("How do the two chatbot vendors differ?", ["faq"], Shape.COMPARISON),
        ("How much can a unit price differ from the PO price?", ["faq"], Shape.FACT),
        (
            "We want to move our system to a different model family. What do we need to do first?",
            ["policy"],
            Shape.PROCEDURE,
        ),
        ("what do we actually have to do during hypercare", ["playbook"], Shape.PROCEDURE),
    ],
)
def test_shape_of_a_question(question: str, types: list[str], shape: Shape) -> None:
    assert question_shape(question, types) is shape


def test_steps_of_headed_steps_stop_at_the_next_section() -> None:
    text = "\n".join(t for _, t in [(s, t) for s, t in ((h.section, h.text) for h in BOOK)])
    steps = steps_of(text, words=20)
    assert steps == [
        "Define the fields: List the fields to extract.",
        "Collect samples: Collect 500 samples per type.",
        "Set thresholds: Auto-accept at 0.90 or higher.",
        "Shadow mode: Run in shadow mode for 6 weeks.",
    ]


@pytest.mark.parametrize("marker", ["1. ", "- 1. "])  # a DOCX numbered list reads "- 1. "
def test_steps_of_a_numbered_list(marker: str) -> None:
    text = (
        f"Rollback\n{marker}Pin the previous version in the console.\n"
        f"{marker.replace('1', '2')}Inform the team lead now."
    )
    assert steps_of(text, words=20) == [
        "Pin the previous version in the console.",
        "Inform the team lead now.",
    ]


def _source(n: int, doc_id: str, text: str, doc_type: str = "playbook", **meta: object) -> Source:
    hit = _chunks(doc_id, [("", text)], doc_type)[0].with_(context=text, **meta)
    return Source(n, (hit,))


PROCEDURE = """Deploying document processing
Steps
Step 1: define the document types
List the fields to extract for each document type and who validates them.
Step 2: collect samples
Collect 500 sample documents per document type from the last 12 months.
Step 3: apply the thresholds
Fields with confidence of 0.90 or higher are accepted automatically.
Step 4: shadow mode
Run the whole document processing pipeline in shadow mode for 6 weeks.
Quality assurance
Check a 2% sample of accepted documents every week by hand."""


def test_extractive_answers_a_procedure_with_numbered_cited_steps(
    embedder: SentenceTransformerEmbedder,
) -> None:
    answer = "".join(
        ExtractiveGenerator(embedder).stream(
            "How do we deploy document processing?",
            [_source(1, "playbook", PROCEDURE, title="Playbook: deploying document processing")],
        )
    )
    lines = answer.splitlines()
    assert lines == [
        "1. Define the document types: List the fields to extract for each document type "
        "and who validates them. [1]",
        "2. Collect samples: Collect 500 sample documents per document type from the last "
        "12 months. [1]",
        "3. Apply the thresholds: Fields with confidence of 0.90 or higher are accepted "
        "automatically. [1]",
        "4. Shadow mode: Run the whole document processing pipeline in shadow mode for 6 "
        "weeks. [1]",
    ]


def test_a_projects_numbered_list_is_not_taken_for_a_procedure(
    embedder: SentenceTransformerEmbedder,
) -> None:
    requirements = (
        "How we deploy document processing with this vendor\n1. Read invoices in English and "
        "Polish.\n2. Post results into LedgerOne.\n3. Run in the EU region."
    )
    sources = [
        _source(1, "playbook", "Deploying document processing starts with the document types."),
        _source(2, "vendor", requirements, "vendor_evaluation"),
    ]
    answer = "".join(
        ExtractiveGenerator(embedder).stream("How do we deploy document processing?", sources)
    )
    assert not any(line.startswith("1.") for line in answer.splitlines()), answer


FAQ = """What training is available?
- AI Essentials, a 45-minute e-learning course.
- Prompting for Professionals, a half-day workshop.
- Building on KAIG, a two-day course for developers.
How do I get my project idea in front of the CoE?
1. Fill in the AI-01 Project Intake Form.
2. Submit it as a ServicePoint request to the CoE.
3. The CoE triages it within 10 working days and names a contact."""


def test_the_list_about_the_question_is_chosen_not_the_first(
    embedder: SentenceTransformerEmbedder,
) -> None:
    source = _source(1, "faq", FAQ, "faq", title="AI Center of Excellence FAQ")
    answer = "".join(
        ExtractiveGenerator(embedder).stream(
            "What's the process to get my AI project idea in front of the CoE?", [source]
        )
    )
    assert answer.splitlines() == [
        "1. Fill in the AI-01 Project Intake Form. [1]",
        "2. Submit it as a ServicePoint request to the CoE. [1]",
        "3. The CoE triages it within 10 working days and names a contact. [1]",
    ]


def test_without_a_list_about_the_question_its_closest_sentences_answer(
    embedder: SentenceTransformerEmbedder,
) -> None:
    text = (
        "Courses\n- AI Essentials, a 45-minute e-learning course.\n- Prompting for "
        "Professionals, a half-day workshop.\nLoad testing\nBefore go-live, run a load test "
        "at twice the expected peak for 30 minutes; the error rate must stay under 1%."
    )
    source = _source(1, "playbook", text, title="Testing playbook")
    answer = "".join(ExtractiveGenerator(embedder).stream("How do I run the load test?", [source]))
    assert "twice the expected peak" in answer
    assert not answer.startswith("1.")


def test_a_question_about_one_step_is_answered_with_what_that_step_says(
    embedder: SentenceTransformerEmbedder,
) -> None:
    step = (
        "Step 8: label\nWhen the project needs labels, write a labelling guide with "
        "definitions and three worked examples per label. Use the CoE labelling tool, TagDesk. "
        "Have two people label the same 10% of items and compute Cohen's kappa."
    )
    checklist = (
        "Checklist\n- [ ] Inventory complete, classification recorded\n- [ ] Labels with "
        "kappa at least 0.80\n- [ ] Data card signed by data owner and CoE"
    )
    hits = _chunks("data-playbook", [("Steps > Step 8: label", step), ("Checklist", checklist)])
    source = Source(1, (hits[0].with_(score=0.9), hits[1].with_(score=0.5)))
    question = "We need people to label data for our classifier. What's the process?"
    generator = ExtractiveGenerator(embedder)
    expected = [
        "1. When the project needs labels, write a labelling guide with definitions and three "
        "worked examples per label. [1]",
        "2. Use the CoE labelling tool, TagDesk. [1]",
        "3. Have two people label the same 10% of items and compute Cohen's kappa. [1]",
    ]
    assert "".join(generator.stream(question, [source])).splitlines() == expected
    assert generator.quote(question, [source], [Shape.PROCEDURE]) == expected  # as quoted


def test_a_step_keeps_the_sentences_with_its_details_within_its_budget() -> None:
    text = (
        "Step 1: collect samples\nCollecting samples is the first job of the team. It is "
        "usually done by the business analysts with help from the site teams and takes a "
        "while. Collect 500 sample documents per type.\nStep 2: shadow mode\nRun in shadow "
        "mode for 6 weeks."
    )
    steps = steps_of(text, words=20)
    assert steps[0] == (
        "Collect samples: Collecting samples is the first job of the team. "
        "Collect 500 sample documents per type."
    )
    assert steps[1] == "Shadow mode: Run in shadow mode for 6 weeks."


def test_extractive_lists_each_prior_project_with_its_metadata(
    embedder: SentenceTransformerEmbedder,
) -> None:
    sources = [
        _source(
            1,
            "cv-lessons",
            "TalentLens screened CVs and the pilot was cancelled after a bias audit found gaps.",
            "lessons_learned",
            project="CV screening",
            vendor="TalentLens",
            outcome="cancelled",
            year=2025,
        ),
        _source(2, "policy", "AI used in employment decisions needs a bias audit first.", "policy"),
    ]
    answer = "".join(
        ExtractiveGenerator(embedder).stream("Has anyone tried AI to screen CVs?", sources)
    )
    assert answer.splitlines()[0].startswith(
        "- CV screening (coe, TalentLens, cancelled, 2025): TalentLens screened CVs"
    )
    assert "[1]" in answer
    assert "policy" not in answer.lower().split("[1]")[0]


def test_extractive_compares_with_one_line_per_source(
    embedder: SentenceTransformerEmbedder,
) -> None:
    sources = [
        _source(
            1,
            "lessons",
            "The Ask Kestrel deflection rate was 34% in the first year.",
            "lessons_learned",
        ),
        _source(2, "showcase", "Ask Kestrel deflects 41% of customer contacts today.", "showcase"),
    ]
    answer = "".join(
        ExtractiveGenerator(embedder).stream(
            "Is the Ask Kestrel deflection rate 34% or 41%? I've seen both.", sources
        )
    )
    lines = answer.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("- lessons: ")
    assert lines[0].endswith("[1]")
    assert lines[1].startswith("- showcase: ")
    assert lines[1].endswith("[2]")


def test_a_table_row_is_quoted_with_its_column_names() -> None:
    text = (
        "Discount authority\n"
        "Role | Maximum discount without approval\n"
        "Sales rep | 7%\n"
        "Sales manager | 15%\n"
        "Anything above that needs an approval reference from the deal desk."
    )
    assert quotable(text) == [
        "Sales rep: Maximum discount without approval 7%.",
        "Sales manager: Maximum discount without approval 15%.",
        "Anything above that needs an approval reference from the deal desk.",
    ]


@pytest.mark.parametrize(
    ("question", "items"),
    [
        (
            "What was the first-year cost of the AP invoice matching project versus the Ask "
            "Kestrel chatbot?",
            ["AP invoice matching project", "Ask Kestrel chatbot"],
        ),
        ("payback: AP invoice matching vs ClauseCheck?", ["AP invoice matching", "ClauseCheck"]),
        ("How do the build costs of HR Assistant and Deal Notes compare?", []),
        ("What changed between version 1 and version 2?", []),
    ],
)
def test_a_versus_question_names_what_it_compares(question: str, items: list[str]) -> None:
    assert compared(question) == items
    told = instruction(Shape.COMPARISON, question)
    assert all(item in told for item in items)
    assert told == INSTRUCTIONS[Shape.COMPARISON] or items
