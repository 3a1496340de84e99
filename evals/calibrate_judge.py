"""Calibrate KB_ANSWER_JUDGE_THRESHOLD (assistant/answerability.py) and report what it does.

Every question of the golden and employee sets is answered by the extractive generator as the
product assembles it, with the judge reading each answer but refusing none (threshold 0), so
each answered question gets the judge's probability. The threshold is the highest value of a
grid that keeps at least `--keep` (default 0.99, as the refusal gate is chosen) of the
golden calibration part's answered answerable questions answered; the table shows both golden
parts and the employee set, which the choice never sees. Run from the repository (it copies and
ingests corpus/ into a work folder):

    python -m evals.calibrate_judge [--keep 0.99] [--out judge.json] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from api.assembly import build_assistant, build_generator
from assistant.service import Assistant
from evals.bench_answers import GOLDEN_TODAY, Item, golden_items, prepare
from evals.benchkit import configure_runtime, percentiles
from evals.calibrate_refusal import share

GRID = tuple(round(0.05 * i, 2) for i in range(2, 15))  # 0.10 .. 0.70


@dataclass(frozen=True)
class Judged:
    dataset: str
    id: str
    part: str  # golden: calibration | report; employee: held out
    answerable: bool
    refused_before: bool  # refused before the judge read it (gate, check)
    probability: float | None  # the judge's P(yes); None when refused before
    judge_ms: float | None


def judged(dataset: str, items: Sequence[Item], assistant: Assistant) -> list[Judged]:
    out = []
    for n, item in enumerate(items, start=1):
        answer = assistant.ask(item.question, principal=item.principal)
        p = answer.answerability
        part = item.part.value if item.part else "held out"
        ms = answer.timings_ms.get("judge")
        refused_before = answer.refused and p is None
        out.append(Judged(dataset, item.key, part, item.answerable, refused_before, p, ms))
        print(f"  [{n}/{len(items)}] {dataset} {item.key}: {p}", file=sys.stderr, flush=True)
    return out


def rates(rows: Sequence[Judged], threshold: float) -> tuple[float, float]:
    """(answerable answered, unanswerable refused) with the judge at `threshold`."""

    def refused(r: Judged) -> bool:
        return r.refused_before or (r.probability is not None and r.probability < threshold)

    answered = [not refused(r) for r in rows if r.answerable]
    caught = [refused(r) for r in rows if not r.answerable]
    return share(answered), share(caught)


def auc(rows: Sequence[Judged]) -> float:
    """How often an answerable question's probability beats an unanswerable one's."""
    pos = [r.probability for r in rows if r.answerable and r.probability is not None]
    neg = [r.probability for r in rows if not r.answerable and r.probability is not None]
    if not pos or not neg:
        return float("nan")
    wins = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    return float(np.mean(wins))


def choose(rows: Sequence[Judged], keep: float) -> float:
    """The highest grid value keeping `keep` of the answered answerable questions answered."""
    ps = np.array([r.probability for r in rows if r.answerable and r.probability is not None])
    kept = [t for t in GRID if (ps >= t).mean() >= keep]
    return max(kept, default=GRID[0])


def table(groups: dict[str, list[Judged]], chosen: float) -> None:
    names = list(groups)
    print(f"{'threshold':>9} " + " ".join(f"{n + ' answered / refused':>36}" for n in names))
    for t in (0.0, *GRID):
        cells = [rates(groups[n], t) for n in names]
        mark = " <- chosen" if t == chosen else ""
        print(f"{t:9.2f} " + " ".join(f"{a:27.3f} {u:8.3f}" for a, u in cells) + mark)
    print("AUC: " + ", ".join(f"{n} {auc(groups[n]):.3f}" for n in names))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=float, default=0.99)
    parser.add_argument("--out", type=Path, default=None, help="write every judgement as JSON")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the ingested store")
    args = parser.parse_args(argv)
    configure_runtime()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kb-judge-"))
    settings, parts = prepare("golden", workdir / "golden")
    today = dt.date.fromisoformat(GOLDEN_TODAY)
    settings = settings.model_copy(
        update={"today": today, "answer_judge": "auto", "answer_judge_threshold": 0.0}
    )
    generator = build_generator(settings, parts.embedder, "extractive")
    assistant = build_assistant(settings, parts.retriever, parts.embedder, generator)
    started = time.perf_counter()
    rows: list[Judged] = []
    for dataset in ("golden", "employee"):
        answerable, unanswerable = golden_items(dataset)
        rows += judged(dataset, answerable + unanswerable, assistant)
    groups = {
        "golden calibration": [r for r in rows if r.part == "calibration"],
        "golden report": [r for r in rows if r.part == "report"],
        "employee": [r for r in rows if r.dataset == "employee"],
    }
    chosen = choose(groups["golden calibration"], args.keep)
    table(groups, chosen)
    ms = [r.judge_ms for r in rows if r.judge_ms is not None]
    print(f"judge latency ms (p50, p95): {percentiles(ms, [50, 95])}")
    print(f"elapsed {time.perf_counter() - started:.0f} s; chosen threshold {chosen}")
    if args.out:
        args.out.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")


if __name__ == "__main__":
    main()
