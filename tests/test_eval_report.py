"""The HTML report of evaluation runs (`kb eval report`, evals/report_html.py): two real runs of
the extractive assistant over a small real store (the second with fewer sources, as the
baseline), the page built from them, and (slow tier) the page in Chromium under the pages'
Content-Security-Policy, with a screenshot."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Route, sync_playwright
from typer.testing import CliRunner

from api.assembly import build_ingester, build_store
from api.cli import app
from api.routes.page import security_headers
from api.settings import Settings
from evals.compare import Run, compare
from evals.report_html import STYLE_HASH, render, worst
from evals.suite import Suite, header, with_overrides
from evals.suite_data import Dataset
from evals.systems import assemble
from index.embedding import SentenceTransformerEmbedder
from tests.conftest import TODAY_STR, write
from tests.test_chat_page import CHROMIUM, CHROMIUM_ARGS
from tests.test_eval_runner import _tree  # the same three documents

HOSTILE = "What is the budget ceiling for a pilot <script>window.__pwned=1</script>?"
DATASET = (
    "question,expected_document,key_facts,type\n"
    "How many working days does intake triage take?,intake,10 working days,single_fact\n"
    f'"{HOSTILE}",pilot-rules,EUR 40000;board approval,single_fact\n'
    "How much did touchless matching improve with DocuSift?,ap-lessons,81%;vendor lock-in,"
    "prior_project\n"
    "What did the steering group decide about pilots?,pilot-rules,steering group,procedural\n"
    "Which catering company serves the staff canteen?,,,unanswerable\n"
)


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> tuple[Run, Run]:
    """(the run, its baseline): the same questions with 10 sources and with 1."""
    root = _tree(tmp_path_factory.mktemp("docs"))
    settings = Settings(_env_file=None, data_dir=tmp_path_factory.mktemp("data"), today=TODAY_STR)
    store = build_store(settings)
    assert len(build_ingester(settings, store, embedder).sync(root).added) == 3
    csv = write(root / "small.csv", DATASET)
    dataset = Dataset("small", csv, "csv")
    questions = dataset.load()
    documents = store.documents()
    folders = []
    for name, pairs in (("run", []), ("baseline", ["answer_sources=1"])):
        changed, overrides = with_overrides(settings, pairs)
        made = header(
            dataset, questions, None, "extractive", changed, overrides, documents, "KB_TODAY"
        )
        folder = tmp_path_factory.mktemp("runs") / name
        assistant = assemble(changed, store, embedder, "extractive")
        assert Suite(questions, assistant, documents, folder, made).run()["status"] == "complete"
        folders.append(folder)
    return Run.load(folders[0]), Run.load(folders[1])


@pytest.fixture(scope="module")
def page(runs: tuple[Run, Run]) -> str:
    return render(list(runs))


def _row(html: str, metric: str) -> list[str]:
    """The cells of the summary table's row for `metric`."""
    found = re.search(rf'<tr><td class="name">{re.escape(metric)}</td>(.*?)</tr>', html)
    assert found is not None, f"no row for {metric}"
    return re.findall(r"<td[^>]*>(.*?)</td>", found.group(1))


def test_the_summary_table_shows_both_runs_with_compares_figures(
    runs: tuple[Run, Run], page: str
) -> None:
    run, baseline = runs
    assert "<th>run</th><th>baseline (baseline)</th><th>change</th>" in page
    figures = {m["metric"]: m for m in compare(baseline, run)["metrics"]}
    assert set(figures) >= {"hit@1", "key_fact_recall", "doc_hit", "latency_p50_ms"}
    for metric in ("hit@1", "key_fact_recall", "citation_recall"):
        cells = _row(page, metric)
        m = figures[metric]
        assert cells[0] == f"{m['b']:g}"
        assert cells[1] == f"{m['a']:g}"
        assert cells[2] == ("" if m["delta"] is None else f"{m['delta']:+g}")
        assert cells[4] == m["verdict"]
    assert "differs: answer_sources: 1 (baseline) &rarr; 10" in page


def test_the_charts_are_inline_svg(runs: tuple[Run, Run], page: str) -> None:
    assert page.count("<svg ") == 5  # three metrics by type, the trend, latency
    for caption in (
        "key_fact_recall by question type",
        "Headline metrics over the runs (by start time)",
        "Latency per question (ms)",
    ):
        assert f"<figcaption>{caption}</figcaption>" in page
    assert f"ms; {len(runs[0].records)} questions</text>" in page  # every latency counted
    per_type = runs[0].summary["metrics"]["per_type"]
    assert f"<title>run prior_project: {per_type['prior_project']['key_fact_recall']:g}" in page


def test_the_worst_questions_show_the_answer_sources_and_missing_facts(
    runs: tuple[Run, Run], page: str
) -> None:
    run = runs[0]
    listed = worst(run)
    lock_in = run.records["small:4"]
    assert "vendor lock-in" not in lock_in["key_facts_found"]  # the planted miss
    assert "small:4" in [r["id"] for r in listed]
    recalls = [r["key_fact_recall"] for r in listed if r["answerable"] and not r["refused"]]
    assert recalls == sorted(recalls)
    (card,) = [c for c in page.split('<div class="question">') if c.startswith("<h3>small:4 ")]
    assert "<b>Key facts missing:</b> vendor lock-in" in card
    assert "[1] ap-lessons" in card
    assert f'<div class="answer">{escape(lock_in["answer"])}</div>' in card


def test_nothing_external_and_record_text_is_escaped(page: str) -> None:
    assert "http://" not in page
    assert "https://" not in page
    assert re.findall(r"\b(?:src|href)\s*=", page) == []
    assert "<script" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page


def test_kb_eval_report_writes_the_page(runs: tuple[Run, Run], tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    done = CliRunner().invoke(
        app, ["eval", "report", str(runs[0].folder), str(runs[1].folder), "--out", str(target)]
    )
    assert done.exit_code == 0, done.output
    assert target.read_text(encoding="utf-8") == render(list(runs))


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():  # never a silent skip: the install step is missing
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install_browser.sh (make test does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.mark.slow  # a browser
def test_the_report_renders_in_chromium_under_the_pages_policy(
    chromium: Any, page: str, tmp_path: Path
) -> None:
    """Served as the report route serves it (the pages' headers, its stylesheet allowed by
    its hash): styled, charts drawn, nothing blocked, no script run."""
    headers = security_headers([STYLE_HASH])
    problems: list[str] = []
    tab = chromium.new_page(viewport={"width": 1200, "height": 900})
    tab.on("console", lambda m: _policy_problem(m, problems))
    tab.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))

    def serve(route: Route) -> None:
        route.fulfill(status=200, body=page, headers=headers, content_type="text/html")

    tab.route("http://report.test/", serve)
    tab.goto("http://report.test/")
    heading = tab.locator("th").first
    assert heading.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(238, 241, 246)"
    assert tab.locator("svg").count() == 5
    box = tab.locator("svg").nth(3).bounding_box()  # the trend chart, laid out
    assert box is not None
    assert box["width"] == 520
    assert tab.evaluate("() => window.__pwned") is None
    shot = tmp_path / "eval-report.png"
    tab.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"screenshot: {shot}")
    tab.close()
    assert problems == []


def _policy_problem(message: ConsoleMessage, problems: list[str]) -> None:
    if "Content Security Policy" in message.text or "Trusted Type" in message.text:
        problems.append(message.text)
