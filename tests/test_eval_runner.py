"""The evaluation runner with the real model and a real store: `kb eval run` end to end on a
tiny dataset, resuming after an interruption, the same inputs giving the same records, and
(slow tier) a floor on a golden subset over corpus/ that fails when retrieval or citations
break."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api.assembly import build_ingester, build_store
from api.settings import Settings
from evals.suite import (
    Progress,
    Suite,
    header,
    read_records,
    read_summary,
    run_today,
)
from evals.suite_data import Dataset, SuiteQuestion, load_csv, resolve, select
from evals.systems import assemble
from index.embedding import SentenceTransformerEmbedder
from index.store import ChromaStore
from tests.conftest import TODAY_STR, markdown, write

KB = Path(sys.executable).parent / "kb"
CORPUS = Path(__file__).parents[1] / "corpus"
TINY_CSV = (
    "question,expected_document,key_facts,type,groups\n"
    "How many working days does intake triage take?,intake,10 working days,single_fact,\n"
    "How much did touchless matching improve with DocuSift?,ap-lessons,81%,prior_project,\n"
    "What is the budget ceiling for a pilot?,pilot-rules,EUR 40000,single_fact,\n"
    "Which catering company serves the staff canteen?,,,unanswerable,\n"
)


def _tree(root: Path) -> Path:
    write(
        root / "finance" / "ap.md",
        markdown(
            "ap-lessons",
            "# AP lessons\n\n## Outcome\n\nTouchless matching rose from 38% to 81% with DocuSift.",
            doc_type="lessons_learned",
        ),
    )
    write(
        root / "coe" / "intake.md",
        markdown("intake", "# Intake\n\nSubmit the AI-01 form; triage takes 10 working days."),
    )
    write(
        root / "coe" / "pilots.md",
        markdown(
            "pilot-rules",
            "# Pilot rules\n\n## Budget\n\nA pilot may spend up to EUR 40000 before the "
            "steering group reviews it.",
        ),
    )
    return root


@pytest.fixture(scope="module")
def tiny(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> tuple[Settings, ChromaStore, Path]:
    root = _tree(tmp_path_factory.mktemp("docs"))
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("data"), today=TODAY_STR)
    store = build_store(settings)
    report = build_ingester(settings, store, embedder).sync(root)
    assert not report.failed
    assert len(report.added) == 3
    dataset = root / "tiny.csv"
    dataset.write_text(TINY_CSV, encoding="utf-8")
    return settings, store, dataset


def _suite(
    tiny: tuple[Settings, ChromaStore, Path],
    embedder: SentenceTransformerEmbedder,
    folder: Path,
    questions: list[SuiteQuestion] | None = None,
    **kwargs: Any,
) -> Suite:
    settings, store, path = tiny
    dataset = Dataset("tiny", path, "csv")
    questions = questions if questions is not None else dataset.load()
    documents = store.documents()
    assistant = assemble(settings, store, embedder, "extractive")
    made = header(dataset, questions, None, "extractive", settings, {}, documents, "KB_TODAY")
    return Suite(questions, assistant, documents, folder, made, **kwargs)


def test_kb_eval_run_end_to_end_on_a_tiny_dataset(tmp_path: Path) -> None:
    docs = _tree(tmp_path / "docs")
    dataset = tmp_path / "tiny.csv"
    dataset.write_text(TINY_CSV, encoding="utf-8")
    env = {**os.environ, "KB_DATA_DIR": str(tmp_path / "data"), "KB_TODAY": TODAY_STR}
    run = [str(KB), "eval", "run", "--dataset", str(dataset), "--generator", "extractive"]
    run += ["--out", str(tmp_path / "run")]

    def kb(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*run, *args], capture_output=True, text=True, env=env, timeout=600, check=False
        )

    done = kb("--ingest", str(docs), "--set", "answer_sources=6")
    assert done.returncode == 0, done.stderr
    assert "added 3" in done.stderr
    assert "[4/4]" in done.stderr
    assert "ETA" in done.stderr
    records = read_records(tmp_path / "run")
    assert [r["id"] for r in records] == ["tiny:2", "tiny:3", "tiny:4", "tiny:5"]
    first = records[0]
    assert first["retrieved"][0] == "intake"
    assert first["first_rank"] == 1
    assert first["key_facts_found"] == ["10 working days"]
    assert first["cited_docs"] == ["intake"]
    assert not first["refused"]
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "complete"
    assert summary["configuration"]["answer_sources"] == 6
    assert summary["overrides"] == {"answer_sources": "6", "generator": "extractive"}
    assert summary["generator"] == "extractive"
    assert summary["today"] == TODAY_STR
    assert summary["today_from"] == "KB_TODAY"
    assert summary["corpus"]["documents"] == 3
    assert len(summary["corpus"]["fingerprint"]) == 16
    assert summary["metrics"]["overall"]["questions"] == 4
    assert summary["metrics"]["overall"]["leaks"] == 0
    assert set(summary["metrics"]["per_department"]) == {"(none)", "coe", "finance"}
    assert "hit@5" in done.stdout
    assert "key_fact_recall" in done.stdout

    again = kb("--set", "answer_sources=6")
    assert again.returncode == 0, again.stderr
    assert "ETA" not in again.stderr  # no question asked again
    assert len(read_records(tmp_path / "run")) == 4

    other = kb()  # answer_sources back to its default: another configuration
    assert other.returncode == 2
    assert "another configuration.answer_sources" in other.stderr


def test_an_interrupted_run_resumes_with_the_questions_left(
    tiny: tuple[Settings, ChromaStore, Path], embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    folder = tmp_path / "run"

    def interrupt_after_two(p: Progress) -> None:
        if p.done == 2:
            raise KeyboardInterrupt

    first = _suite(tiny, embedder, folder, progress=interrupt_after_two)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    assert first.asked == ["tiny:2", "tiny:3"]
    assert [r["id"] for r in read_records(folder)] == ["tiny:2", "tiny:3"]
    interrupted = read_summary(folder)
    assert (interrupted["status"], interrupted["recorded"]) == ("interrupted", 2)

    second = _suite(tiny, embedder, folder)
    summary = second.run()
    assert second.asked == ["tiny:4", "tiny:5"]  # only the rest
    assert [r["id"] for r in read_records(folder)] == ["tiny:2", "tiny:3", "tiny:4", "tiny:5"]
    assert (summary["status"], summary["recorded"]) == ("complete", 4)


def test_the_same_inputs_give_the_same_records(
    tiny: tuple[Settings, ChromaStore, Path], embedder: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    def records(folder: Path) -> list[dict[str, Any]]:
        _suite(tiny, embedder, folder).run()
        timing = {"latency_ms", "timings_ms"}
        return [{k: v for k, v in r.items() if k not in timing} for r in read_records(folder)]

    once = records(tmp_path / "a")
    assert len(once) == 4
    assert records(tmp_path / "b") == once
    a, b = read_summary(tmp_path / "a"), read_summary(tmp_path / "b")
    for summary in (a, b):
        for timing in ("latency_p50_ms", "latency_p95_ms"):
            summary["metrics"]["overall"].pop(timing)
    assert a["metrics"]["overall"] == b["metrics"]["overall"]
    assert a["corpus"] == b["corpus"]


def test_a_store_without_the_datasets_documents_is_refused(
    tiny: tuple[Settings, ChromaStore, Path], tmp_path: Path
) -> None:
    from evals.suite import check_store
    from index.errors import InputError

    _, store, _ = tiny
    golden = resolve("golden")
    with pytest.raises(InputError, match="none of the documents golden expects: ingest them"):
        check_store(golden, golden.load(), store.documents(), tmp_path)
    tiny_csv = load_csv(tiny[2])
    check_store(Dataset("tiny", tiny[2], "csv"), tiny_csv, store.documents(), tmp_path)


# -- the CI floor ------------------------------------------------------------------------------


@pytest.mark.slow
def test_golden_subset_floor(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> None:
    """20 golden questions spread over the types (`kb eval run --dataset golden --limit 20
    --generator extractive`), over corpus/: 16 answerable, 4 unanswerable. Measured on
    2026-12-02 on code 3e808f5 and again on 8bf60fd, the same figures both times:
    hit@1 0.6875, hit@5 0.9375, hit@10 1.0, mrr 0.8099, key_fact_recall 0.7083,
    doc_hit 0.875, citation_precision 0.7135, citation_recall 0.8125, faithfulness 1.0,
    answerable_refused 0.0, unanswerable_refused 0.25 (1 of 4), leaks 0,
    stale_without_warning 0, stale_warning_rate 1.0. On 2026-12-03, with the disagreement
    notes (the triage question's answer now names both values and cites both FAQs):
    key_fact_recall 0.7396, citation_precision 0.724, citation_recall 0.8438, the rest the same.
    Each floor sits one answerable question below the measured value (1/16 = 0.0625), so
    losing retrieval or citations on two questions fails while one question's noise does not.
    Leaks and stale answers without a warning must be 0; unanswerable_refused has no floor
    (one below 1 of 4 is 0)."""
    golden = resolve("golden")
    questions = select(golden.load(), 20)
    settings, today_from = run_today(
        Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("data")), golden
    )
    store = build_store(settings)
    assert not build_ingester(settings, store, embedder).sync(CORPUS).failed
    documents = store.documents()
    assistant = assemble(settings, store, embedder, "extractive")
    made = header(golden, questions, 20, "extractive", settings, {}, documents, today_from)
    folder = tmp_path_factory.mktemp("run")
    overall = Suite(questions, assistant, documents, folder, made).run()["metrics"]["overall"]
    print(json.dumps(overall, indent=1))  # the measured values, for the floors above
    assert (overall["questions"], overall["answerable"]) == (20, 16)
    assert overall["leaks"] == 0
    assert overall["stale_without_warning"] == 0
    assert overall["hit@5"] >= 0.875
    assert overall["mrr"] >= 0.74
    assert overall["key_fact_recall"] >= 0.64
    assert overall["doc_hit"] >= 0.8125
    assert overall["citation_precision"] >= 0.65
    assert overall["citation_recall"] >= 0.75
    assert overall["faithfulness"] == 1.0
    assert overall["answerable_refused"] <= 0.0625
    assert overall["stale_warning_rate"] == 1.0
