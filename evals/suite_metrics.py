"""The metrics of the evaluation suites (`kb eval`): a record per question, and the metrics
over any set of records, each defined once in METRICS (evals/README.md, "Evaluation suites").

A record is a plain dict (one line of a run's `records.jsonl`), so a run read back from disk
is summarized exactly as it was written. Per-question scoring reuses evals/answers.py (key
facts, expected document cited, leaks, stale warnings, faithfulness, contoso's citation match).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from assistant.service import Answer
from evals.answers import (
    citation_match,
    doc_hit,
    faithfulness,
    key_fact_recall,
    leaked_docs,
    warned_stale,
)
from evals.bench_retrieval import HIT_AT, first_rank
from evals.suite_data import SuiteQuestion

NO_DEPARTMENT = "(none)"  # the department of an unanswerable question's expected document
DIGITS = 4


# -- one question -----------------------------------------------------------------------------


def score(
    q: SuiteQuestion,
    answer: Answer,
    retrieved: Sequence[str],
    departments: dict[str, str],
    latency_ms: float,
    threshold: float,
) -> dict[str, Any]:
    """The record of one question: what was asked, retrieved and answered, and every
    per-question metric. `retrieved`: the document id of each retrieved chunk, best first;
    `departments`: document id -> department (the registry's); `threshold`: the citation
    checker's, for faithfulness."""
    cited = list(dict.fromkeys(c.doc_id for c in answer.citations))
    expected = set(q.expected_docs)
    rank = first_rank([d in expected for d in retrieved]) if q.answerable else None
    found = [f for f in q.key_facts if key_fact_recall(answer.answer, [f])]
    faith = faithfulness(answer, threshold)
    leaks = sorted(
        set(leaked_docs(answer, q.forbidden_docs)) | (set(retrieved) & set(q.forbidden_docs))
    )
    cites_stale = any(c.stale for c in answer.citations)
    answered = not answer.refused
    record: dict[str, Any] = {
        "id": q.id,
        "type": q.type.value,
        "question": q.question,
        "answerable": q.answerable,
        "department": departments.get(q.expected_docs[0], "unknown")
        if q.answerable
        else NO_DEPARTMENT,
        "principal_groups": q.principal_groups,
        "expected_docs": q.expected_docs,
        "retrieved": list(retrieved),
        "answer": answer.answer,
        "refused": answer.refused,
        "refusal_reason": answer.refusal_reason,
        "citations": [
            {"n": c.n, "doc_id": c.doc_id, "page": c.page, "support": c.support, "stale": c.stale}
            for c in answer.citations
        ],
        "cited_docs": cited,
        "first_rank": rank,
        **{f"hit@{k}": (rank is not None and rank <= k) if q.answerable else None for k in HIT_AT},
        "reciprocal_rank": (1 / rank if rank else 0.0) if q.answerable else None,
        "key_facts": q.key_facts,
        "key_facts_found": found,
        "key_fact_recall": len(found) / len(q.key_facts) if q.answerable and q.key_facts else None,
        "doc_hit": doc_hit(answer, expected) if q.answerable else None,
        "citation_precision": len(expected.intersection(cited)) / len(cited)
        if q.answerable and cited
        else None,
        "citation_recall": len(expected.intersection(cited)) / len(expected)
        if q.answerable
        else None,
        "cited_sentences": faith.sentences,
        "supported_sentences": faith.supported,
        "removed_sentences": faith.removed,
        "leaked": leaks,
        "must_warn_stale": q.must_warn_stale,
        "cites_stale": cites_stale,
        "warned": warned_stale(answer),
        "stale_without_warning": answered
        and (cites_stale or q.must_warn_stale)
        and not warned_stale(answer),
        "citation_match": citation_match(answer, q.reference_page) if q.reference_page else None,
        "latency_ms": round(latency_ms, 1),
        "timings_ms": answer.timings_ms,
    }
    return record


# -- over many questions ----------------------------------------------------------------------


def _flag(key: str, when: Callable[[dict[str, Any]], bool] = lambda r: True) -> Callable[..., Any]:
    """The record's value of `key` as a number where it applies (`when`), else None."""

    def value(r: dict[str, Any]) -> float | None:
        v = r.get(key)
        return None if v is None or not when(r) else float(v)

    return value


def _answerable(r: dict[str, Any]) -> bool:
    return bool(r["answerable"])


def _unanswerable(r: dict[str, Any]) -> bool:
    return not r["answerable"]


def _answered(r: dict[str, Any]) -> bool:
    return not r["refused"]


@dataclass(frozen=True)
class Metric:
    """One figure of a run. `value` gives each record's contribution (None: the record does
    not count); `how` combines them: the mean, the sum, the sum of `value` over the sum of
    `denominator`, or a percentile."""

    name: str
    how: str  # "mean", "sum", "ratio", "p50", "p95"
    value: Callable[[dict[str, Any]], float | None]
    definition: str
    lower_is_better: bool = False
    denominator: Callable[[dict[str, Any]], float | None] | None = None


METRICS: tuple[Metric, ...] = (
    *(
        Metric(
            f"hit@{k}",
            "mean",
            _flag(f"hit@{k}"),
            f"share of answerable questions with a chunk of an expected document among the "
            f"first {k} chunks retrieved for the answer",
        )
        for k in HIT_AT
    ),
    Metric(
        "mrr",
        "mean",
        _flag("reciprocal_rank"),
        "mean over answerable questions of 1 / the rank of the first retrieved chunk from an "
        "expected document (0 when none is retrieved)",
    ),
    Metric(
        "key_fact_recall",
        "mean",
        _flag("key_fact_recall"),
        "mean over answerable questions with key facts of the share of them found in the "
        "answer (case- and whitespace-insensitive; a refusal finds none)",
    ),
    Metric(
        "doc_hit",
        "mean",
        _flag("doc_hit"),
        "share of answerable questions whose answer cites an expected document",
    ),
    Metric(
        "citation_precision",
        "mean",
        _flag("citation_precision"),
        "mean over answerable questions answered with citations of the share of cited "
        "documents that are expected ones",
    ),
    Metric(
        "citation_recall",
        "mean",
        _flag("citation_recall"),
        "mean over answerable questions of the share of expected documents the answer cites "
        "(a refusal cites none)",
    ),
    Metric(
        "faithfulness",
        "ratio",
        _flag("supported_sentences", _answered),
        "cited sentences whose cited sources support them (support >= the citation "
        "threshold) over all cited sentences of answered questions",
        denominator=_flag("cited_sentences", _answered),
    ),
    Metric(
        "removed_per_answer",
        "mean",
        _flag("removed_sentences", _answered),
        "sentences the citation checker removed as unsupported, per answered question",
        lower_is_better=True,
    ),
    Metric(
        "unanswerable_refused",
        "mean",
        _flag("refused", _unanswerable),
        "share of unanswerable questions (no expected document) that were refused",
    ),
    Metric(
        "answerable_refused",
        "mean",
        _flag("refused", _answerable),
        "share of answerable questions that were refused",
        lower_is_better=True,
    ),
    Metric(
        "leaks",
        "sum",
        lambda r: float(bool(r["leaked"])),
        "questions whose answer cites or names, or whose retrieval returns, a forbidden "
        "document (must be 0)",
        lower_is_better=True,
    ),
    Metric(
        "stale_without_warning",
        "sum",
        _flag("stale_without_warning"),
        "answered questions citing a stale document, or marked must_warn_stale, whose answer "
        "carries no stale warning (must be 0)",
        lower_is_better=True,
    ),
    Metric(
        "stale_warning_rate",
        "mean",
        _flag("warned", lambda r: bool(r["must_warn_stale"])),
        "share of must_warn_stale questions whose answer warns that a source is stale",
    ),
    Metric(
        "citation_match",
        "mean",
        _flag("citation_match"),
        "contoso_hr: share of answerable questions answered with a citation of the reference "
        "file at the reference page +-1",
    ),
    Metric(
        "latency_p50_ms",
        "p50",
        _flag("latency_ms"),
        "median wall time of one answer (retrieval, generation, checking), ms",
        lower_is_better=True,
    ),
    Metric(
        "latency_p95_ms",
        "p95",
        _flag("latency_ms"),
        "95th percentile of that wall time, ms",
        lower_is_better=True,
    ),
)
BY_NAME = {m.name: m for m in METRICS}


def columns(metric: Metric, records: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(values, denominators) of a metric per record, NaN where a record does not count."""

    def array(f: Callable[[dict[str, Any]], float | None] | None) -> np.ndarray:
        if f is None:
            return np.ones(len(records))
        return np.array([np.nan if (v := f(r)) is None else v for r in records], dtype=float)

    return array(metric.value), array(metric.denominator)


def combine(metric: Metric, values: np.ndarray, denominators: np.ndarray) -> np.ndarray:
    """The metric over the last axis of `values` (one row per resample, or a single row);
    NaN where no record counts."""
    counted = ~np.isnan(values)
    n = counted.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric.how == "mean":
            return np.where(n > 0, np.nansum(values, axis=-1) / np.maximum(n, 1), np.nan)
        if metric.how == "sum":
            return np.where(n > 0, np.nansum(values, axis=-1), np.nan)
        if metric.how == "ratio":
            den = np.nansum(np.where(counted, denominators, np.nan), axis=-1)
            return np.where(den > 0, np.nansum(values, axis=-1) / np.where(den > 0, den, 1), np.nan)
        q = float(metric.how.removeprefix("p"))
        out = np.full(values.shape[:-1], np.nan)
        rows = n > 0
        if np.any(rows):
            out[rows] = np.nanpercentile(values[rows], q, axis=-1)
        return out


def metric_value(metric: Metric, records: Sequence[dict[str, Any]]) -> float | None:
    """The metric over the records; None when no record counts."""
    if not records:
        return None
    values, denominators = columns(metric, records)
    found = float(combine(metric, values[None, :], denominators[None, :])[0])
    return None if np.isnan(found) else rounded(metric, found)


def rounded(metric: Metric, value: float) -> float:
    """Counts as whole numbers, milliseconds to 0.1, the rest to DIGITS places."""
    if metric.how == "sum":
        return round(value)
    return round(value, 1 if metric.name.endswith("_ms") else DIGITS)


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts and every metric that applies to these records (those that do not are left out,
    so a gate naming one fails as lacking it)."""
    out: dict[str, Any] = {
        "questions": len(records),
        "answerable": sum(bool(r["answerable"]) for r in records),
        "unanswerable": sum(not r["answerable"] for r in records),
    }
    for metric in METRICS:
        value = metric_value(metric, records)
        if value is not None:
            out[metric.name] = value
    return out


def grouped(records: Iterable[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """summarize() per value of a record key (question type, department)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(str(r[key]), []).append(r)
    return {g: summarize(groups[g]) for g in sorted(groups)}


def all_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What summary.json holds under "metrics": overall, per question type, per department."""
    return {
        "overall": summarize(records),
        "per_type": grouped(records, "type"),
        "per_department": grouped(records, "department"),
    }


def metrics_table() -> str:
    """The metric table of evals/README.md ("Evaluation suites"); a test keeps the two equal."""
    rows = ["| metric | better | definition |", "|---|---|---|"]
    for m in METRICS:
        rows.append(
            f"| `{m.name}` | {'lower' if m.lower_is_better else 'higher'} | {m.definition} |"
        )
    return "\n".join(rows)
