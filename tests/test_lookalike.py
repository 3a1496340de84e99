"""The look-alike set's generator: deterministic, in step with the committed files, and every
report names its organisation and period in its text."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from pypdf import PdfReader

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO / "evals" / "datasets" / "lookalike"
FILINGS = REPO / "evals" / "datasets" / "lookalike-filings"


def generator() -> ModuleType:
    """scripts/build_lookalike.py (not a package), registered so its dataclasses resolve."""
    if "build_lookalike" in sys.modules:
        return sys.modules["build_lookalike"]
    spec = importlib.util.spec_from_file_location(
        "build_lookalike", REPO / "scripts" / "build_lookalike.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_lookalike"] = module
    spec.loader.exec_module(module)
    return module


def test_the_build_is_deterministic_and_matches_the_committed_set(tmp_path: Path) -> None:
    build = generator().build
    first = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in build(tmp_path / "a")}
    second = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in build(tmp_path / "b")}
    assert len(first) == 13  # 12 PDFs and the questions
    assert first == second
    committed = {rel: (DATASET / rel).read_bytes() for rel in first}
    assert committed == first, "run scripts/build_lookalike.py and commit its output"


def test_the_filings_are_the_same_reports_and_questions_under_accession_numbers(
    tmp_path: Path,
) -> None:
    module = generator()
    written = module.build(tmp_path, "filing")
    assert {p.relative_to(tmp_path): p.read_bytes() for p in written} == {
        p.relative_to(tmp_path): (FILINGS / p.relative_to(tmp_path)).read_bytes() for p in written
    }, "run scripts/build_lookalike.py --style filing and commit its output"
    ids = {r.doc_id: r.accession for r in module.reports()}
    assert len(set(ids.values())) == 12
    plain = [json.loads(line) for line in (DATASET / "questions.jsonl").read_text().splitlines()]
    filed = [json.loads(line) for line in (FILINGS / "questions.jsonl").read_text().splitlines()]
    assert [q["question"] for q in filed] == [q["question"] for q in plain]
    assert [q["expected_docs"] for q in filed] == [
        [ids[d] for d in q["expected_docs"]] for q in plain
    ]
    for report in module.reports():
        cover = PdfReader(FILINGS / "docs" / f"{report.accession}.pdf").pages[0].extract_text()
        assert "FORM 10-Q" in cover
        assert report.org.name in cover
        assert f"For the quarterly period ended {report.quarter.ended}" in cover
        assert report.org.slug not in report.accession


def test_each_report_names_its_organisation_and_period_and_shares_the_cover() -> None:
    module = generator()
    reports = module.reports()
    assert len(reports) == 12
    assert len({(r.org.slug, r.quarter.slug) for r in reports}) == 12
    for report in reports:
        pages = PdfReader(DATASET / "docs" / f"{report.doc_id}.pdf").pages
        assert 2 <= len(pages) <= 3
        cover = pages[0].extract_text()
        body = " ".join(" ".join(p.extract_text().split()) for p in pages[1:])
        assert "QUARTERLY REPORT" in cover
        assert "Table of contents" in cover
        assert f"{report.org.name} reported revenue" in body
        assert f"for the quarter ended {report.quarter.ended}" in body
        for heading in module.SECTIONS:
            assert heading in body


def test_questions_name_existing_documents_and_some_several() -> None:
    rows = [json.loads(line) for line in (DATASET / "questions.jsonl").read_text().splitlines()]
    docs = {p.stem for p in (DATASET / "docs").glob("*.pdf")}
    assert len(rows) >= 40
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["expected_docs"] and set(r["expected_docs"]) <= docs for r in rows)
    several = [r for r in rows if len(r["expected_docs"]) > 1]
    assert len(several) == 7
