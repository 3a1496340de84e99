"""The one sentence splitter (index/sentences.py), which chunking, excerpts, the extractive
composer and the citation checker share."""

from __future__ import annotations

from assistant.citations import split_cited
from assistant.sources import _units
from index.sentences import split_line, split_sentences, strip_list_marker


def test_no_ends_a_sentence_unless_a_number_follows() -> None:
    assert split_line("The answer is no. Employees must ask first.") == [
        "The answer is no.",
        "Employees must ask first.",
    ]
    assert split_line("See form No. 5 for details.") == ["See form No. 5 for details."]


def test_abbreviations_and_list_numbers_do_not_end_a_sentence() -> None:
    assert split_line("Use a model, e.g. Sage 3, for this. Then test it.") == [
        "Use a model, e.g. Sage 3, for this.",
        "Then test it.",
    ]
    assert split_line("1. Submit the form. 2. Wait.") == ["1. Submit the form.", "2. Wait."]


def test_lines_always_end_sentences() -> None:
    text = "## Steps\n- Submit the AI-01 form\n| Samples | 500 |"
    assert split_sentences(text) == ["## Steps", "- Submit the AI-01 form", "| Samples | 500 |"]


def test_the_checker_and_the_excerpts_cut_a_source_the_same_way() -> None:
    text = "Prompts are kept 90 days. The answer is no. Ask first.\n- Then log it."
    assert [sentence for _, sentence in _units(text)] == split_sentences(text)


def test_markers_after_a_stop_belong_to_the_sentence_before() -> None:
    assert split_cited("The answer is no. [1] Employees must ask first. [2]") == [
        ("The answer is no.", [1]),
        ("Employees must ask first.", [2]),
    ]


def test_list_markers() -> None:
    assert strip_list_marker("12) Post it") == "Post it"
    assert strip_list_marker("- Post it") == "Post it"
    assert strip_list_marker("Post it") == "Post it"


def test_a_number_ends_a_sentence_unless_it_opens_the_line() -> None:
    assert split_line("The canteen opens at 8. Answers are deleted.") == [
        "The canteen opens at 8.",
        "Answers are deleted.",
    ]
