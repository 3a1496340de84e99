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
