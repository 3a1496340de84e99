"""The evaluation suites without a model: dataset loaders and their error messages, the
per-question metrics and their aggregation on hand-computed cases, and compare and gate on two
hand-made run folders with a planted regression."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api.settings import Settings
from assistant.service import Answer, Citation
from evals.compare import Run, compare, gate, gate_json, read_thresholds
from evals.golden import QuestionType
from evals.suite import RECORDS, SUMMARY, configuration, read_records
from evals.suite_data import DatasetError, SuiteQuestion, load_csv, resolve, select
from evals.suite_metrics import BY_NAME, all_metrics, metric_value, metrics_table, score, summarize
from index.errors import InputError

KB = Path(sys.executable).parent / "kb"
HEADER = "question,expected_document,key_facts,type,groups\n"


# -- datasets ---------------------------------------------------------------------------------


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "questions.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def test_csv_rows_become_questions_in_the_golden_format(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "How long are prompts kept?,data-retention-policy,30 days; day 31,,\n"
        "\n"  # a blank row a spreadsheet left
        'What did the audit find?,audit-report,"12 findings",single_fact,finance; legal\n'
        "Who runs the moon base?,,,,\n",
    )
    first, second, third = load_csv(path)
    assert first.id == "questions:2"
    assert first.expected_docs == ["data-retention-policy"]
    assert first.key_facts == ["30 days", "day 31"]
    assert first.type is QuestionType.SINGLE_FACT
    assert first.principal_groups == ["all"]
    assert second.principal_groups == ["finance", "legal"]
    assert second.id == "questions:4"
    assert third.type is QuestionType.UNANSWERABLE
    assert not third.answerable


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "How long?,doc-a,30 days,,\n,doc-b,x,,\n",
            "questions.csv line 3: field 'question' is empty",
        ),
        (
            "How long are prompts kept?,doc-a,30 days,fact,\n",
            "questions.csv line 2: field 'type' is 'fact': use one of single_fact, procedural",
        ),
        (
            "How long are prompts kept?,,30 days,,\n",
            "questions.csv line 2: field 'key_facts' given but no document is expected",
        ),
        (
            "How long are prompts kept?,doc-a,,unanswerable,\n",
            "questions.csv line 2: field 'type' is 'unanswerable' but a document is expected",
        ),
        (
            "How long are prompts kept?,doc-a,a;b;c;d;e,,\n",
            "questions.csv line 2: field 'key_facts' has 5 items: at most 4",
        ),
        (
            "Why?,doc-a,x,,\n",
            "questions.csv line 2: field 'question' String should have at least 5",
        ),
    ],
)
def test_a_malformed_csv_names_the_file_line_and_field(
    tmp_path: Path, body: str, message: str
) -> None:
    with pytest.raises(DatasetError) as caught:
        load_csv(_csv(tmp_path, body))
    assert message in str(caught.value)


def test_a_csv_missing_a_column_says_which_columns_there_are(tmp_path: Path) -> None:
    path = _csv(tmp_path, "How long?,doc-a\n", header="question,expected_document\n")
    with pytest.raises(DatasetError, match="line 1: field 'key_facts' is not a column") as caught:
        load_csv(path)
    assert "the columns are question, expected_document, key_facts" in str(caught.value)


def test_a_malformed_jsonl_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    good = {"id": "q1", "question": "How long are prompts kept?", "expected_docs": ["a"]}
    path.write_text(json.dumps(good) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"set.jsonl line 2: is not JSON"):
        resolve(str(path)).load()
    path.write_text(json.dumps({**good, "answer": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="line 1: field 'answer' is not a field of the format"):
        resolve(str(path)).load()
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"field 'id' repeats \['q1'\]"):
        resolve(str(path)).load()


def test_the_known_datasets_load_and_a_limit_spreads_over_the_types() -> None:
    golden = resolve("golden").load()
    assert len(golden) == 155
    assert golden[0].origin == "evals/datasets/golden/part_a.jsonl:1" or golden[0].origin.endswith(
        "part_a.jsonl:1"
    )
    lookalike = resolve("lookalike").load()
    assert len(lookalike) == 43
    assert {q.type for q in lookalike} == {QuestionType.SINGLE_FACT}
    followups = resolve("followups").load()
    assert len(followups) == 40
    assert all(q.history for q in followups)  # each is asked after its conversation
    chosen = select(golden, 20)
    assert len(chosen) == 20
    assert {q.type for q in chosen} == set(QuestionType)  # every type has a question
    assert [q.id for q in chosen] == [q.id for q in golden if q in chosen]  # dataset order
    assert select(golden, 20) == chosen  # the same every time


def test_kb_eval_datasets_fails_on_a_malformed_file_with_its_line(tmp_path: Path) -> None:
    bad = _csv(tmp_path, "How long?,doc-a,30 days,,\n,doc-b,x,,\n")
    done = subprocess.run(
        [str(KB), "eval", "datasets", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "KB_DATA_DIR": str(tmp_path / "data")},
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout
    assert "questions.csv line 3: field 'question' is empty" in done.stderr


# -- per-question metrics -----------------------------------------------------------------------


def _citation(n: int, doc_id: str, stale: bool = False) -> Citation:
    return Citation(n, doc_id, doc_id, f"{doc_id}.md", None, "", stale, 0.9, "o", None, "")


def _answer(text: str, cited: list[str], refused: bool = False, stale: bool = False) -> Answer:
    citations = [_citation(n, d, stale) for n, d in enumerate(cited, start=1)]
    warnings = [f"[{c.n}] stale" for c in citations if c.stale]
    return Answer("q", "q", text, refused, citations, warnings, timings_ms={"total": 5.0})


def _question(**fields: Any) -> SuiteQuestion:
    base: dict[str, Any] = {
        "id": "q1",
        "question": "What does the plan say?",
        "expected_docs": ["plan", "faq"],
        "key_facts": ["30 days", "form AI-01"],
    }
    return SuiteQuestion.model_validate({**base, **fields})


DEPARTMENTS = {"plan": "coe", "faq": "hr", "old": "coe"}


def test_one_question_scored_by_hand() -> None:
    q = _question(forbidden_docs=["old"])
    answer = _answer("Prompts are kept for 30 DAYS. [1] Ask IT. [2]", ["faq", "other"])
    record = score(q, answer, ["other", "other", "faq", "plan"], DEPARTMENTS, 12.34, 0.55)
    assert record["first_rank"] == 3
    assert (record["hit@1"], record["hit@2"], record["hit@5"]) == (False, False, True)
    assert record["reciprocal_rank"] == pytest.approx(1 / 3)
    assert record["key_facts_found"] == ["30 days"]
    assert record["key_fact_recall"] == 0.5
    assert record["doc_hit"] is True
    assert record["citation_precision"] == 0.5  # faq of (faq, other)
    assert record["citation_recall"] == 0.5  # faq of (plan, faq)
    assert (record["cited_sentences"], record["supported_sentences"]) == (2, 2)
    assert record["leaked"] == []
    assert record["department"] == "coe"  # the first expected document's
    assert record["latency_ms"] == 12.3


def test_leaks_refusals_and_stale_answers_by_hand() -> None:
    restricted = _question(expected_docs=[], key_facts=[], forbidden_docs=["secret"])
    leaked = score(restricted, _answer("x [1]", ["secret"]), ["a"], {}, 1.0, 0.55)
    assert leaked["leaked"] == ["secret"]
    assert leaked["department"] == "(none)"
    assert leaked["hit@5"] is None
    assert leaked["citation_recall"] is None
    retrieved = score(restricted, _answer("x", [], refused=True), ["secret"], {}, 1.0, 0.55)
    assert retrieved["leaked"] == ["secret"]  # a forbidden document among the hits

    refused = score(_question(), _answer("I don't know.", [], refused=True), [], {}, 1.0, 0.55)
    assert refused["key_fact_recall"] == 0.0
    assert refused["citation_recall"] == 0.0
    assert refused["citation_precision"] is None  # nothing cited
    assert refused["hit@10"] is False
    assert refused["reciprocal_rank"] == 0.0

    stale_q = _question(must_warn_stale=True)
    unwarned = score(stale_q, _answer("30 days [1]", ["plan"]), ["plan"], DEPARTMENTS, 1.0, 0.55)
    assert unwarned["stale_without_warning"] is True
    warned = score(stale_q, _answer("30 days [1]", ["plan"], stale=True), [], {}, 1.0, 0.55)
    assert (warned["warned"], warned["stale_without_warning"]) == (True, False)


def test_aggregates_by_hand() -> None:
    q = _question()
    records = [
        score(
            q.model_copy(update={"id": "a"}),
            _answer("30 days form AI-01 [1]", ["plan"]),
            ["plan"],
            DEPARTMENTS,
            100.0,
            0.55,
        ),
        score(
            q.model_copy(update={"id": "b"}),
            _answer("no [1]", ["zzz"]),
            ["zzz", "faq"],
            DEPARTMENTS,
            300.0,
            0.55,
        ),
        score(
            q.model_copy(update={"id": "c"}),
            _answer("I don't know.", [], refused=True),
            [],
            DEPARTMENTS,
            200.0,
            0.55,
        ),
        score(
            _question(id="d", expected_docs=[], key_facts=[], type="unanswerable"),
            _answer("I don't know.", [], refused=True),
            [],
            DEPARTMENTS,
            400.0,
            0.55,
        ),
    ]
    overall = summarize(records)
    assert (overall["questions"], overall["answerable"], overall["unanswerable"]) == (4, 3, 1)
    assert overall["hit@1"] == round(1 / 3, 4)  # a
    assert overall["hit@2"] == round(2 / 3, 4)  # a, b (faq second)
    assert overall["mrr"] == round((1 + 0.5 + 0) / 3, 4)
    assert overall["key_fact_recall"] == round((1 + 0 + 0) / 3, 4)
    assert overall["doc_hit"] == round(1 / 3, 4)
    assert overall["citation_precision"] == 0.5  # a: 1, b: 0; c cites nothing
    assert overall["citation_recall"] == round((0.5 + 0 + 0) / 3, 4)
    assert overall["answerable_refused"] == round(1 / 3, 4)
    assert overall["unanswerable_refused"] == 1.0
    assert overall["leaks"] == 0
    assert overall["latency_p50_ms"] == 250.0
    assert overall["latency_p95_ms"] == 385.0
    assert "citation_match" not in overall  # no contoso question: left out, not 0
    assert "stale_warning_rate" not in overall
    grouped = all_metrics(records)
    assert set(grouped["per_type"]) == {"single_fact", "unanswerable"}
    assert grouped["per_department"]["coe"]["questions"] == 3
    assert metric_value(BY_NAME["leaks"], []) is None


# -- compare and gate on a planted regression ----------------------------------------------------


def _run_folder(folder: Path, regressed: bool) -> Path:
    """Ten answerable questions, all answered with both facts from the expected document;
    `regressed`: q0-q2 refused and q3-q4 lose one fact."""
    folder.mkdir()
    records = []
    for i in range(10):
        q = _question(id=f"q{i}")
        if regressed and i < 3:
            answer = _answer("I don't know.", [], refused=True)
        elif regressed and i < 5:
            answer = _answer("Kept 30 days. [1]", ["plan"])
        else:
            answer = _answer("Kept 30 days; use form AI-01. [1]", ["plan"])
        retrieved = [] if regressed and i < 3 else ["plan"]
        records.append(score(q, answer, retrieved, DEPARTMENTS, 100.0 + i, 0.55))
    (folder / RECORDS).write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = {"configuration": {"answer_sources": 5 if regressed else 10}, "generator": "x"}
    (folder / SUMMARY).write_text(json.dumps(summary))
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Run, Run]:
    good = _run_folder(tmp_path / "good", regressed=False)
    bad = _run_folder(tmp_path / "bad", regressed=True)
    return Run.load(good), Run.load(bad)


def test_compare_finds_the_planted_regression(runs: tuple[Run, Run]) -> None:
    good, bad = runs
    result = compare(good, bad)
    assert result["shared_questions"] == 10
    assert result["differences"] == {"answer_sources": [10, 5]}
    metrics = {m["metric"]: m for m in result["metrics"]}
    recall = metrics["key_fact_recall"]
    assert (recall["a"], recall["b"]) == (1.0, 0.6)  # (3 x 0 + 2 x 0.5 + 5 x 1) / 10
    assert recall["delta"] == -0.4
    assert recall["low"] < recall["delta"] < recall["high"] < 0
    assert recall["verdict"] == "worse"
    refused = metrics["answerable_refused"]
    assert refused["delta"] == 0.3
    # No refused question in 0.7 ** 10 = 2.8% of resamples: the interval touches 0, so the
    # change is not called (3 of 10 is not enough to be sure at 95%).
    assert (refused["low"], refused["verdict"]) == (0.0, "")
    assert refused["high"] > 0.3
    assert metrics["leaks"]["verdict"] == ""  # 0 -> 0
    flips = result["flips"]
    assert [f["id"] for f in flips["answered_to_refused"]] == ["q0", "q1", "q2"]
    assert flips["refused_to_answered"] == []
    lost = {f["id"]: f["facts"] for f in flips["key_facts_lost"]}
    assert lost == {
        "q0": ["30 days", "form AI-01"],
        "q1": ["30 days", "form AI-01"],
        "q2": ["30 days", "form AI-01"],
        "q3": ["form AI-01"],
        "q4": ["form AI-01"],
    }
    assert compare(good, bad) == result  # fixed seed
    same = {m["metric"]: m for m in compare(good, good)["metrics"]}
    assert (same["mrr"]["delta"], same["mrr"]["low"], same["mrr"]["high"]) == (0.0, 0.0, 0.0)


def _thresholds(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "thresholds.yaml"
    path.write_text(text)
    return path


def test_gate_passes_the_good_run_and_fails_the_regressed_one(
    runs: tuple[Run, Run], tmp_path: Path
) -> None:
    good, bad = runs
    path = _thresholds(
        tmp_path,
        "key_fact_recall: {min: 0.8, max_drop: 0.05}\n"
        "leaks: {max: 0}\n"
        "answerable_refused: {max_drop: 0.1}\n"
        "per_type.single_fact.hit@5: {min: 0.9}\n",
    )
    assert gate_json(gate(good, path, baseline=good))["passed"] is True
    checks = gate(bad, path, baseline=good)
    failed = [(c.metric, c.rule) for c in checks if not c.passed]
    assert failed == [
        ("key_fact_recall", "min"),
        ("key_fact_recall", "max_drop"),
        ("answerable_refused", "max_drop"),
        ("per_type.single_fact.hit@5", "min"),
    ]
    assert "FAIL key_fact_recall: 0.6 (want >= 0.8)" in [c.line() for c in checks]


def test_gate_errors_name_what_is_wrong(runs: tuple[Run, Run], tmp_path: Path) -> None:
    good, _ = runs
    with pytest.raises(InputError, match="has no value for 'citation_match'"):
        gate(good, _thresholds(tmp_path, "citation_match: {min: 0.5}\n"))
    with pytest.raises(InputError, match="unknown metric 'recall'"):
        read_thresholds(_thresholds(tmp_path, "recall: {min: 0.5}\n"))
    with pytest.raises(InputError, match=r"'mrr': unknown rule \['floor'\]"):
        read_thresholds(_thresholds(tmp_path, "mrr: {floor: 0.5}\n"))
    with pytest.raises(InputError, match="'mrr' sets max_drop: give --baseline RUN"):
        gate(good, _thresholds(tmp_path, "mrr: {max_drop: 0.1}\n"))


def test_kb_eval_gate_and_compare_exit_codes_and_json(
    runs: tuple[Run, Run], tmp_path: Path
) -> None:
    good, bad = runs
    path = _thresholds(tmp_path, "key_fact_recall: {min: 0.8}\nleaks: {max: 0}\n")

    def kb(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KB_DATA_DIR": str(tmp_path / "data")}
        return subprocess.run(
            [str(KB), "eval", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    passed = kb("gate", str(good.folder), "--thresholds", str(path))
    assert passed.returncode == 0, passed.stderr
    assert "gate: all passed" in passed.stdout
    failed = kb("gate", str(bad.folder), "--thresholds", str(path), "--json")
    assert failed.returncode == 1, failed.stderr
    verdict = json.loads(failed.stdout)
    assert verdict["passed"] is False
    assert [c["metric"] for c in verdict["checks"] if not c["passed"]] == ["key_fact_recall"]
    listed = kb("gate", str(bad.folder), "--thresholds", str(path))
    assert listed.returncode == 1
    assert "FAIL key_fact_recall: 0.6 (want >= 0.8)" in listed.stdout
    assert "gate: 1 of 2 checks failed: key_fact_recall (min)" in listed.stdout
    lacking = kb(
        "gate",
        str(good.folder),
        "--thresholds",
        str(_thresholds(tmp_path, "citation_match: {min: 1}\n")),
    )
    assert lacking.returncode == 2
    assert "no value for 'citation_match'" in lacking.stderr
    shown = kb("compare", str(good.folder), str(bad.folder))
    assert shown.returncode == 0, shown.stderr
    assert "answered to refused: 3" in shown.stdout
    assert "key_fact_recall" in shown.stdout
    as_json = json.loads(kb("compare", str(good.folder), str(bad.folder), "--json").stdout)
    assert len(as_json["flips"]["key_facts_lost"]) == 5


def test_a_record_cut_short_by_an_interrupted_write_is_dropped(tmp_path: Path) -> None:
    (tmp_path / RECORDS).write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "ans')
    assert [r["id"] for r in read_records(tmp_path)] == ["a", "b"]
    assert (tmp_path / RECORDS).read_text() == '{"id": "a"}\n{"id": "b"}\n'
    (tmp_path / RECORDS).write_text('{"id": "a"}\n{broken\n{"id": "c"}\n')
    with pytest.raises(InputError, match="line 2: not a JSON record"):
        read_records(tmp_path)


def test_the_readme_lists_every_metric_as_the_code_defines_it() -> None:
    readme = (Path(__file__).parents[1] / "evals" / "README.md").read_text(encoding="utf-8")
    assert metrics_table() in readme


def test_a_run_records_no_secret_setting() -> None:
    settings = Settings(
        _env_file=None,
        openai_api_key="sk-do-not-record",
        chroma_host="chroma.internal",
        chroma_auth_token="ch-do-not-record",
    )
    recorded = json.dumps(configuration(settings))
    assert "do-not-record" not in recorded
    assert "chroma.internal" in recorded  # which store was evaluated is recorded
