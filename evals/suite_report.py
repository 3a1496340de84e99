"""What `kb eval` prints: the dataset list, a progress line per question, a run's summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evals.benchkit import Column, format_table
from evals.golden import QuestionType
from evals.suite import Progress
from evals.suite_data import Dataset, SuiteQuestion, shown, type_counts
from evals.suite_metrics import METRICS

# The per-type and per-department tables' columns (the overall table lists every metric).
GROUP_COLUMNS = (
    "hit@5",
    "mrr",
    "key_fact_recall",
    "doc_hit",
    "citation_precision",
    "answerable_refused",
    "unanswerable_refused",
)


def datasets_lines(found: Sequence[tuple[Dataset, list[SuiteQuestion]]]) -> list[str]:
    types = [t.value for t in QuestionType]
    cols = [Column("dataset", 12, "<"), Column("format", 9, "<"), Column("n", 5)]
    cols += [Column(t.replace("_", " "), max(len(t), 5) + 2) for t in types]
    rows = []
    for dataset, questions in found:
        counts = type_counts(questions)
        rows.append(
            [dataset.name, dataset.fmt, len(questions), *(counts.get(t, "") for t in types)]
        )
    lines = format_table(cols, rows)
    lines.append("")
    for dataset, _ in found:
        docs = f"  (documents: {shown(dataset.documents)})" if dataset.documents else ""
        lines.append(f"{dataset.name}: {shown(dataset.path)}{docs}")
    return lines


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return (
        f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
        if minutes >= 60
        else f"{minutes}:{secs:02d}"
    )


def progress_line(p: Progress) -> str:
    r = p.record
    verdict = "refused" if r["refused"] else "answered"
    if r["answerable"] == r["refused"]:
        verdict += " (answerable)" if r["answerable"] else " (unanswerable)"
    details = []
    if r["key_fact_recall"] is not None:
        details.append(f"facts {len(r['key_facts_found'])}/{len(r['key_facts'])}")
    if r["first_rank"] is not None:
        details.append(f"rank {r['first_rank']}")
    elif r["answerable"] and r["retrieved"] is not None:  # None: the system does not say
        details.append("not retrieved")
    if r["leaked"]:
        details.append(f"LEAK {','.join(r['leaked'])}")
    if r["stale_without_warning"]:
        details.append("STALE WITHOUT WARNING")
    return (
        f"[{p.done}/{p.total}] {r['id']} {r['type']}: {verdict}"
        + (f", {', '.join(details)}" if details else "")
        + f"  {r['latency_ms'] / 1000:.1f} s  ETA {duration(p.eta_seconds)}"
    )


def summary_lines(summary: dict[str, Any], folder: str) -> list[str]:
    metrics = summary["metrics"]
    overall = metrics["overall"]
    corpus = summary["corpus"]
    code = summary["code"]
    lines = [
        f"run {folder}: {summary['status']}, {summary['recorded']} of {summary['questions']} "
        f"questions ({overall['answerable']} answerable, {overall['unanswerable']} unanswerable)",
        f"dataset {summary['dataset']['name']}, generator {summary['generator']}, "
        f"today {summary['today']} ({summary['today_from']}), corpus {corpus['documents']} "
        f"documents ({corpus['fingerprint']}), code {str(code['commit'])[:12]}"
        + (" (modified)" if code["modified"] else ""),
    ]
    if summary["overrides"]:
        lines.append("overrides: " + ", ".join(f"{k}={v}" for k, v in summary["overrides"].items()))
    rows = [[m.name, overall[m.name]] for m in METRICS if m.name in overall]
    lines += ["", *format_table([Column("metric", 24, "<"), Column("value", 10)], rows)]
    for title, key in (("question type", "per_type"), ("department", "per_department")):
        cols = [Column(title, 18, "<"), Column("n", 4)]
        cols += [Column(c, max(len(c), 6) + 2) for c in GROUP_COLUMNS]
        table = [
            [group, m["questions"], *(m.get(c, "") for c in GROUP_COLUMNS)]
            for group, m in metrics[key].items()
        ]
        lines += ["", *format_table(cols, table)]
    return lines
