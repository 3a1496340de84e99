"""Comparing two runs of `kb eval run`, and gating a run on thresholds (`kb eval compare`,
`kb eval gate`).

compare: every metric of evals/suite_metrics.py over the questions both runs answered, B minus
A, with a paired bootstrap 95% interval (the same resampled questions for both runs, a fixed
seed, so the same two folders always give the same figures), and the questions that flipped.

gate: a YAML file of checks, one entry per metric:

    hit@5: {min: 0.9}                        # a floor on the run's value
    leaks: {max: 0}                          # a ceiling
    key_fact_recall: {min: 0.7, max_drop: 0.02}   # at most this much worse than --baseline
    per_type.procedural.key_fact_recall: {min: 0.6}   # one question type (or per_department.X)

`max_drop` is measured in the metric's bad direction (a fall for most, a rise for those where
lower is better: leaks, refusals of answerable questions, latency), on the questions both runs
share. A metric the run has no value for is an error naming it, not a pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evals.benchkit import Column, format_table
from evals.suite import read_records, read_summary
from evals.suite_metrics import (
    BY_NAME,
    METRICS,
    Metric,
    columns,
    combine,
    metric_value,
    rounded,
)
from index.errors import InputError

# Bootstrap resamples. Measured on two 30-question golden runs (answer_sources 10 vs 5), six
# seeds: at 2,000 the interval ends moved by at most 0.004 between seeds (0.014 for hit@10,
# whose steps are 1/23), in 0.3 s; 5,000 halved that at 2.8 times the time. The seed is fixed,
# so a comparison never moves at all.
RESAMPLES = 2000
SEED = 13
RULES = ("min", "max", "max_drop")
GROUPS = {"per_type": "type", "per_department": "department"}


@dataclass(frozen=True)
class Run:
    folder: Path
    summary: dict[str, Any]
    records: dict[str, dict[str, Any]]  # by question id, in file order

    @classmethod
    def load(cls, folder: Path) -> Run:
        summary = read_summary(folder)
        return cls(folder, summary, {r["id"]: r for r in read_records(folder)})


# -- compare ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delta:
    metric: str
    a: float | None
    b: float | None
    delta: float | None
    low: float | None  # the 95% interval of the delta
    high: float | None
    lower_is_better: bool

    @property
    def verdict(self) -> str:
        """better / worse when the interval excludes 0, else "" (no clear change)."""
        if self.low is None or self.high is None or (self.low <= 0 <= self.high):
            return ""
        up = self.low > 0
        return "worse" if up == self.lower_is_better else "better"


def _rounded(metric: Metric, x: float) -> float | None:
    return None if np.isnan(x) else rounded(metric, float(x))


def paired_delta(
    metric: Metric, a: list[dict[str, Any]], b: list[dict[str, Any]], picks: np.ndarray
) -> Delta:
    """B - A on the same questions, and its bootstrap interval over the resampled `picks`."""
    va, da = columns(metric, a)
    vb, db = columns(metric, b)
    point_a = combine(metric, va[None, :], da[None, :])[0]
    point_b = combine(metric, vb[None, :], db[None, :])[0]
    deltas = combine(metric, vb[picks], db[picks]) - combine(metric, va[picks], da[picks])
    low = high = float("nan")
    if np.any(~np.isnan(deltas)):
        low, high = np.nanpercentile(deltas, [2.5, 97.5])
    return Delta(
        metric.name,
        _rounded(metric, point_a),
        _rounded(metric, point_b),
        _rounded(metric, point_b - point_a),
        _rounded(metric, low),
        _rounded(metric, high),
        metric.lower_is_better,
    )


def shared_ids(a: Run, b: Run) -> list[str]:
    ids = [i for i in a.records if i in b.records]
    if not ids:
        raise InputError(f"{a.folder} and {b.folder} share no question: nothing to compare")
    return ids


def flips(a: Run, b: Run, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Questions whose outcome changed from A to B."""
    out: dict[str, list[dict[str, Any]]] = {
        "answered_to_refused": [],
        "refused_to_answered": [],
        "key_facts_lost": [],
        "key_facts_gained": [],
    }
    for i in ids:
        ra, rb = a.records[i], b.records[i]
        base = {"id": i, "type": rb["type"], "answerable": rb["answerable"]}
        if not ra["refused"] and rb["refused"]:
            out["answered_to_refused"].append({**base, "reason": rb.get("refusal_reason")})
        if ra["refused"] and not rb["refused"]:
            out["refused_to_answered"].append(base)
        found_a, found_b = set(ra["key_facts_found"]), set(rb["key_facts_found"])
        if found_a - found_b:
            out["key_facts_lost"].append({**base, "facts": sorted(found_a - found_b)})
        if found_b - found_a:
            out["key_facts_gained"].append({**base, "facts": sorted(found_b - found_a)})
    return out


def compare(a: Run, b: Run, resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    ids = shared_ids(a, b)
    ra, rb = [a.records[i] for i in ids], [b.records[i] for i in ids]
    picks = np.random.default_rng(seed).integers(0, len(ids), size=(resamples, len(ids)))
    deltas = [paired_delta(m, ra, rb, picks) for m in METRICS]
    config_a, config_b = a.summary.get("configuration", {}), b.summary.get("configuration", {})
    return {
        "a": str(a.folder),
        "b": str(b.folder),
        "shared_questions": len(ids),
        "only_in_a": len(a.records) - len(ids),
        "only_in_b": len(b.records) - len(ids),
        "differences": {
            key: [config_a.get(key), config_b.get(key)]
            for key in sorted(config_a.keys() | config_b.keys())
            if config_a.get(key) != config_b.get(key)
        }
        | {
            key: [a.summary.get(key), b.summary.get(key)]
            for key in ("generator", "corpus", "today", "code")
            if a.summary.get(key) != b.summary.get(key)
        },
        "bootstrap": {"resamples": resamples, "seed": seed, "interval": 0.95},
        "metrics": [
            {**asdict(d), "verdict": d.verdict}
            for d in deltas
            if d.a is not None or d.b is not None
        ],
        "flips": flips(a, b, ids),
    }


def compare_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        f"A: {result['a']}",
        f"B: {result['b']}",
        f"{result['shared_questions']} questions in both (only in A: {result['only_in_a']}, "
        f"only in B: {result['only_in_b']}); B - A with a paired bootstrap 95% interval "
        f"({result['bootstrap']['resamples']} resamples, seed {result['bootstrap']['seed']})",
    ]
    for key, (va, vb) in result["differences"].items():
        lines.append(f"  differs: {key}: {va} -> {vb}")
    columns_ = [
        Column("metric", 24, "<"),
        Column("A", 10),
        Column("B", 10),
        Column("B - A", 10),
        Column("95% interval", 22),
        Column("", 8),
    ]
    rows = [
        [
            m["metric"],
            m["a"],
            m["b"],
            m["delta"],
            f"[{m['low']}, {m['high']}]" if m["low"] is not None else "",
            m["verdict"],
        ]
        for m in result["metrics"]
    ]
    lines += ["", *format_table(columns_, rows), ""]
    for kind, found in result["flips"].items():
        lines.append(f"{kind.replace('_', ' ')}: {len(found)}")
        for f in found:
            facts = f" {f['facts']}" if "facts" in f else ""
            why = f" ({f['reason']})" if f.get("reason") else ""
            unanswerable = "" if f["answerable"] else " [unanswerable]"
            lines.append(f"  {f['id']} {f['type']}{unanswerable}{facts}{why}")
    return lines


# -- gate -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    metric: str
    rule: str  # min | max | max_drop
    limit: float
    value: float
    baseline: float | None
    passed: bool

    def line(self) -> str:
        mark = "ok  " if self.passed else "FAIL"
        if self.rule == "max_drop":
            return (
                f"{mark} {self.metric}: {self.value:g} against baseline {self.baseline:g}, "
                f"worse by {self.worse:g} (allowed: {self.limit:g})"
            )
        word = ">=" if self.rule == "min" else "<="
        return f"{mark} {self.metric}: {self.value:g} (want {word} {self.limit:g})"

    @property
    def worse(self) -> float:
        """How much worse than the baseline (negative: better); 0 without one."""
        if self.baseline is None:
            return 0.0
        lower = BY_NAME[self.metric.rsplit(".", 1)[-1]].lower_is_better
        return round(self.value - self.baseline if lower else self.baseline - self.value, 4)


def read_thresholds(path: Path) -> dict[str, dict[str, float]]:
    """The checks of a thresholds file; errors name the file and the entry."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read thresholds: {exc}") from None
    if not isinstance(loaded, dict) or not loaded:
        raise InputError(f"{path}: want a mapping of metric -> {{min, max, max_drop}}")
    checks: dict[str, dict[str, float]] = {}
    for name, rules in loaded.items():
        if not isinstance(rules, dict) or not rules:
            raise InputError(f"{path}: '{name}': want a mapping with min, max or max_drop")
        unknown = sorted(set(rules) - set(RULES))
        if unknown:
            raise InputError(f"{path}: '{name}': unknown rule {unknown}: use {', '.join(RULES)}")
        for rule, limit in rules.items():
            if isinstance(limit, bool) or not isinstance(limit, int | float):
                raise InputError(f"{path}: '{name}' {rule}: '{limit}' is not a number")
        _split_metric(path, str(name))
        checks[str(name)] = {str(k): float(v) for k, v in rules.items()}
    return checks


def _split_metric(path: Path, name: str) -> tuple[str | None, str | None, Metric]:
    """`hit@5` -> (None, None, hit@5); `per_type.procedural.mrr` -> ("type", "procedural", mrr)."""
    group, value = None, None
    metric = name
    if name.split(".", 1)[0] in GROUPS:
        parts = name.split(".")
        if len(parts) != 3:
            raise InputError(f"{path}: '{name}': want per_type.<type>.<metric>")
        group, value, metric = GROUPS[parts[0]], parts[1], parts[2]
    if metric not in BY_NAME:
        raise InputError(f"{path}: unknown metric '{metric}': use one of {', '.join(BY_NAME)}")
    return group, value, BY_NAME[metric]


def _value(path: Path, name: str, records: list[dict[str, Any]]) -> float | None:
    group, wanted, metric = _split_metric(path, name)
    if group is not None:
        records = [r for r in records if str(r[group]) == wanted]
    return metric_value(metric, records)


def gate(run: Run, thresholds: Path, baseline: Run | None = None) -> list[Check]:
    """Every check of the thresholds file on the run (and the baseline, for max_drop)."""
    checks: list[Check] = []
    for name, rules in read_thresholds(thresholds).items():
        value = _value(thresholds, name, list(run.records.values()))
        if value is None:
            raise InputError(
                f"{run.folder} has no value for '{name}' (named in {thresholds}): no question "
                "of the run counts for it"
            )
        for rule, limit in rules.items():
            if rule == "min":
                checks.append(Check(name, rule, limit, value, None, value >= limit))
            elif rule == "max":
                checks.append(Check(name, rule, limit, value, None, value <= limit))
            else:
                checks.append(_drop_check(thresholds, name, limit, run, baseline))
    return checks


def _drop_check(thresholds: Path, name: str, limit: float, run: Run, baseline: Run | None) -> Check:
    if baseline is None:
        raise InputError(f"{thresholds}: '{name}' sets max_drop: give --baseline RUN")
    ids = shared_ids(baseline, run)
    now = _value(thresholds, name, [run.records[i] for i in ids])
    before = _value(thresholds, name, [baseline.records[i] for i in ids])
    if now is None or before is None:
        lacking = run.folder if now is None else baseline.folder
        raise InputError(f"{lacking} has no value for '{name}' on the questions both runs share")
    check = Check(name, "max_drop", limit, now, before, passed=False)
    return replace(check, passed=check.worse <= limit)


def gate_json(checks: list[Check]) -> dict[str, Any]:
    return {"passed": all(c.passed for c in checks), "checks": [asdict(c) for c in checks]}
