"""One self-contained HTML page about runs of `kb eval run` (`kb eval report`, and
`GET /v1/evals/runs/{id}/report`).

The first run is the one of interest, the second its baseline: the summary table is
evals/compare.py's comparison of the two (baseline = A, the run = B, so the delta is the run
minus its baseline, over the questions both answered), with the overall values of any further
runs beside it. Then charts, drawn here as inline SVG (no script, no file, no other origin):
a few metrics by question type, the trend of the headline metrics over the runs given (ordered
by when they started), the run's latency distribution; and its worst questions (leaks first,
then answerable questions refused, stale sources without a warning, unanswerable questions
answered, then the lowest key-fact recall) with the answer, its sources and the key facts it
missed. Every text that comes from a run is escaped.

The page's one stylesheet is an inline `<style>`; a server sending the pages' strict
Content-Security-Policy allows it by its hash (`STYLE_HASH`). Nothing uses a `style` attribute.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from html import escape
from typing import Any

from evals.compare import Run, compare
from evals.report_svg import bars, histogram, lines
from evals.suite_metrics import BY_NAME

# Rates between 0 and 1, the ones a reader looks at first: the trend chart draws these.
HEADLINE = (
    "hit@5",
    "mrr",
    "key_fact_recall",
    "doc_hit",
    "citation_precision",
    "answerable_refused",
    "unanswerable_refused",
)
BY_TYPE = ("hit@5", "key_fact_recall", "doc_hit")  # a bar chart each
WORST = 10  # questions listed

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d2330;
padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#d8dde6;padding-bottom:4px}
.meta{color:#555;margin:2px 0}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d8dde6;padding:3px 8px;text-align:right}
th{background:#eef1f6}td.name,th.name{text-align:left}
.better{color:#17703a;font-weight:600}.worse{color:#b3261e;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;border:1px solid #d8dde6;border-radius:6px;padding:8px;background:#fff}
figcaption{font-weight:600;margin-bottom:4px}
svg text{font:11px system-ui,sans-serif;fill:#333}
.question{border:1px solid #d8dde6;border-radius:6px;padding:8px 12px;margin:10px 0}
.question h3{font-size:15px;margin:0 0 4px}
.tag{display:inline-block;background:#b3261e;color:#fff;border-radius:3px;padding:0 6px;
margin-right:4px;font-size:12px}
.answer{white-space:pre-wrap;background:#f6f7f9;padding:6px;border-radius:4px;margin:4px 0}
.missing{color:#b3261e}
"""
STYLE_HASH = f"'sha256-{base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()}'"


def render(runs: Sequence[Run]) -> str:
    """The page about `runs` (at least one): the first is the run of interest, the second its
    baseline."""
    run = runs[0]
    name = escape(run.folder.name)
    body = [
        f"<h1>Evaluation report: {name}</h1>",
        *_run_lines(run),
        "<h2>Summary</h2>",
        *summary_table(runs),
        "<h2>Charts</h2>",
        '<div class="charts">',
        *by_type_charts(runs[:2]),
        trend_chart(runs),
        latency_chart(run),
        "</div>",
        "<h2>Worst questions</h2>",
        *worst_questions(run),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Evaluation report: {name}</title><style>{STYLE}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _run_lines(run: Run) -> list[str]:
    s = run.summary
    dataset = s.get("dataset", {})
    overrides = ", ".join(f"{k}={v}" for k, v in (s.get("overrides") or {}).items())
    return [
        f'<p class="meta">{escape(str(s.get("status", "")))}: {s.get("recorded", 0)} of '
        f"{s.get('questions', 0)} questions of {escape(str(dataset.get('name', '')))}, "
        f"generator {escape(str(s.get('generator', '')))}, started "
        f"{escape(str(s.get('started_at', '')))}, staleness judged on "
        f"{escape(str(s.get('today', '')))}</p>",
        f'<p class="meta">overrides: {escape(overrides or "none")}</p>',
    ]


# -- the summary table ------------------------------------------------------------------------


def _overall(run: Run) -> dict[str, Any]:
    overall: dict[str, Any] = run.summary.get("metrics", {}).get("overall", {})
    return overall


def _number(value: Any) -> str:
    return "" if value is None else escape(f"{value:g}" if isinstance(value, float) else str(value))


def summary_table(runs: Sequence[Run]) -> list[str]:
    """Per metric: the run, its baseline, the delta with its interval and verdict (compare's
    figures), and the overall value of each further run."""
    run, rest = runs[0], runs[1:]
    names = [escape(r.folder.name) for r in runs]
    if not rest:
        rows = [
            f'<tr><td class="name">{escape(m)}</td><td>{_number(v)}</td></tr>'
            for m, v in _overall(run).items()
            if m in BY_NAME
        ]
        return ["<table><tr><th class=name>metric</th>", f"<th>{names[0]}</th></tr>", *rows]
    result = compare(rest[0], run)  # A = the baseline, B = the run: B - A is the change
    others = [_overall(r) for r in rest[1:]]
    head = (
        '<table><tr><th class="name">metric</th>'
        f"<th>{names[0]}</th><th>{names[1]} (baseline)</th><th>change</th><th>95% interval</th>"
        "<th></th>" + "".join(f"<th>{n}</th>" for n in names[2:]) + "</tr>"
    )
    rows = []
    for m in result["metrics"]:
        interval = f"[{_number(m['low'])}, {_number(m['high'])}]" if m["low"] is not None else ""
        delta = "" if m["delta"] is None else f"{m['delta']:+g}"
        rows.append(
            f'<tr><td class="name">{escape(m["metric"])}</td><td>{_number(m["b"])}</td>'
            f"<td>{_number(m['a'])}</td><td>{escape(delta)}</td><td>{interval}</td>"
            f'<td class="{m["verdict"]}">{m["verdict"]}</td>'
            + "".join(f"<td>{_number(o.get(m['metric']))}</td>" for o in others)
            + "</tr>"
        )
    notes = [
        f'<p class="meta">{result["shared_questions"]} questions in both runs; change = run - '
        f"baseline, with a paired bootstrap 95% interval ({result['bootstrap']['resamples']} "
        f"resamples, seed {result['bootstrap']['seed']}); further runs: overall values.</p>"
    ]
    for key, (before, after) in result["differences"].items():
        notes.append(
            f'<p class="meta">differs: {escape(key)}: {escape(str(before))} (baseline) &rarr; '
            f"{escape(str(after))}</p>"
        )
    return [*notes, head, *rows, "</table>"]


# -- charts -----------------------------------------------------------------------------------


def _figure(caption: str, svg: str) -> str:
    return f"<figure><figcaption>{escape(caption)}</figcaption>{svg}</figure>"


def by_type_charts(runs: Sequence[Run]) -> list[str]:
    """One grouped bar chart per metric of BY_TYPE: a group per question type, a bar per run."""
    per_type = [r.summary.get("metrics", {}).get("per_type", {}) for r in runs]
    types = list(dict.fromkeys(t for p in per_type for t in p))
    figures = []
    for metric in BY_TYPE:
        series = [
            (r.folder.name, [p.get(t, {}).get(metric) for t in types])
            for r, p in zip(runs, per_type, strict=True)
        ]
        figures.append(_figure(f"{metric} by question type", bars(types, series)))
    return figures


def trend_chart(runs: Sequence[Run]) -> str:
    ordered = sorted(runs, key=lambda r: str(r.summary.get("started_at", "")))
    series = [(m, [_overall(r).get(m) for r in ordered]) for m in HEADLINE]
    svg = lines([r.folder.name for r in ordered], series)
    return _figure("Headline metrics over the runs (by start time)", svg)


def latency_chart(run: Run) -> str:
    latencies = [float(r["latency_ms"]) for r in run.records.values() if r.get("latency_ms")]
    overall = _overall(run)
    marks = [
        (f"p{p}", overall[f"latency_p{p}_ms"]) for p in (50, 95) if f"latency_p{p}_ms" in overall
    ]
    return _figure("Latency per question (ms)", histogram(latencies, marks))


# -- the worst questions ----------------------------------------------------------------------


def problems(record: dict[str, Any]) -> list[str]:
    """What went wrong with a question's answer, worst first."""
    found = []
    if record.get("leaked"):
        found.append("leak")
    if record.get("answerable") and record.get("refused"):
        found.append("answerable refused")
    if record.get("stale_without_warning"):
        found.append("stale without warning")
    if not record.get("answerable") and not record.get("refused"):
        found.append("unanswerable answered")
    recall = record.get("key_fact_recall")
    if recall is not None and recall < 1:
        found.append(f"key facts {len(record['key_facts_found'])}/{len(record['key_facts'])}")
    return found


def _badness(record: dict[str, Any]) -> tuple[float, ...]:
    recall = record.get("key_fact_recall")
    return (
        -len(record.get("leaked") or []),
        -int(bool(record.get("answerable") and record.get("refused"))),
        -int(bool(record.get("stale_without_warning"))),
        -int(not record.get("answerable") and not record.get("refused")),
        1.0 if recall is None else recall,
    )


def worst(run: Run, n: int = WORST) -> list[dict[str, Any]]:
    """The run's `n` worst questions that had something wrong, worst first."""
    bad = [r for r in run.records.values() if problems(r)]
    return sorted(bad, key=_badness)[:n]


def worst_questions(run: Run) -> list[str]:
    found = worst(run)
    if not found:
        return [
            "<p>No question had a leak, a wrong refusal, a missed key fact or an unwarned "
            "stale source.</p>"
        ]
    return [_question_card(r) for r in found]


def _question_card(r: dict[str, Any]) -> str:
    tags = "".join(f'<span class="tag">{escape(p)}</span>' for p in problems(r))
    sources = ", ".join(
        f"[{c.get('n')}] {escape(str(c.get('doc_id')))}" + (" (stale)" if c.get("stale") else "")
        for c in r.get("citations") or []
    )
    found = set(r.get("key_facts_found") or [])
    missing = [f for f in r.get("key_facts") or [] if f not in found]
    why = (
        f" ({escape(str(r['refusal_reason']))})"
        if r.get("refused") and r.get("refusal_reason")
        else ""
    )
    return (
        f'<div class="question"><h3>{escape(str(r["id"]))} <small>{escape(str(r["type"]))}'
        f"</small></h3><p>{tags}</p><p><b>Question:</b> {escape(str(r['question']))}</p>"
        f"<p><b>Answer{' (refused)' if r.get('refused') else ''}{why}:</b></p>"
        f'<div class="answer">{escape(str(r.get("answer") or ""))}</div>'
        f"<p><b>Cited:</b> {sources or 'nothing'}</p>"
        f"<p><b>Expected:</b> {escape(', '.join(r.get('expected_docs') or [])) or 'none'}</p>"
        + (
            f'<p class="missing"><b>Key facts missing:</b> {escape("; ".join(missing))}</p>'
            if missing
            else ""
        )
        + (
            f'<p class="missing"><b>Leaked:</b> {escape(", ".join(r["leaked"]))}</p>'
            if r.get("leaked")
            else ""
        )
        + "</div>"
    )
