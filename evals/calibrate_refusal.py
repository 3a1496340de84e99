"""Calibrate the two refusal thresholds on the golden set.

KB_REFUSAL_THRESHOLD gates generation: below it the assistant refuses without calling the
model. It must keep (nearly) every answerable question, so it is chosen as the highest value
that keeps at least `--keep` of them; what it refuses of the unanswerable ones is a bonus.

KB_LLM_REFUSAL_PROBABILITY (`--llm`) acts after it, inside the local model: the answer is
refused when the model's probability of opening it with the refusal sentence is at least this,
even when another opening is likelier. For every question that passes the gate, the model
reads the prompt the product builds (the same sources and excerpts) and the probability of the
refusal's first token is measured (one prompt evaluation and one token per question: about 5 s
each on two cores). The threshold is the lowest value that keeps at least `--llm-keep` of
the answerable questions answered (default 0.90, the answered rate the assistant must reach),
so it refuses as much as that allows. Run against an ingested store of corpus/:

    KB_DATA_DIR=data python -m evals.calibrate_refusal [--keep 0.99] [--llm [--llm-keep 0.9]]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from api.assembly import (
    build_answer_embedder,
    build_embedder,
    build_generator,
    build_retriever,
    build_store,
    configure_runtime,
)
from api.settings import Settings
from assistant.generators import PromptedGenerator
from assistant.sources import number_sources
from evals.golden import load_golden
from index.filters import Principal
from index.hits import Hit
from index.hybrid import HybridRetriever

GATE_GRID = tuple(round(0.20 + 0.05 * i, 2) for i in range(10))  # 0.20 .. 0.65
LLM_GRID = tuple(round(0.05 * i, 2) for i in range(1, 11))  # 0.05 .. 0.50


@dataclass(frozen=True)
class Probe:
    id: str
    answerable: bool
    top: float  # best dense similarity of the retrieved sources
    refusal_probability: float | None = None  # measured only above the gate


def retrieved(
    retriever: HybridRetriever, settings: Settings
) -> list[tuple[str, str, bool, list[Hit]]]:
    """(id, question, answerable, hits) for every golden question, as its asker retrieves."""
    out = []
    for q in load_golden():
        hits = retriever.retrieve(
            q.question,
            settings.answer_sources,
            today=settings.today_date(),
            principal=Principal.of(*q.principal_groups),
            neighbors=settings.answer_neighbors,
        )
        out.append((q.id, q.question, q.answerable, hits))
    return out


def top_score(hits: Sequence[Hit]) -> float:
    return max((h.dense_score or 0.0 for h in hits), default=0.0)


def highest_keeping(scores: np.ndarray, grid: Sequence[float], keep: float) -> float:
    """The highest gate in `grid` that keeps at least `keep` of `scores` (scores >= gate)."""
    kept = [float(g) for g in grid if (scores >= g).mean() >= keep]
    return max(kept, default=float(grid[0]))


def lowest_keeping(probabilities: np.ndarray, grid: Sequence[float], keep: float) -> float:
    """The lowest refusal probability in `grid` that keeps at least `keep` answered
    (probabilities < threshold)."""
    kept = [g for g in grid if (probabilities < g).mean() >= keep]
    return min(kept, default=1.0)


def gate_table(answerable: np.ndarray, unanswerable: np.ndarray, keep: float) -> float:
    print(f"{'threshold':>9} {'answerable kept':>16} {'unanswerable refused':>21}")
    for threshold in GATE_GRID:
        kept = float((answerable >= threshold).mean())
        refused = float((unanswerable < threshold).mean())
        print(f"{threshold:9.2f} {kept:16.3f} {refused:21.3f}")
    best = highest_keeping(answerable, GATE_GRID, keep)
    print(f"answerable {len(answerable)}, unanswerable {len(unanswerable)}")
    print(f"highest threshold keeping >= {keep:.0%} of answerable: {best:.2f}")
    return best


def llm_table(probes: Sequence[Probe], gate: float, keep: float) -> float:
    """Rates over all golden questions: a question is refused by the gate (top < gate) or by
    the model (probability >= threshold)."""
    answerable = [p for p in probes if p.answerable]
    unanswerable = [p for p in probes if not p.answerable]

    def refused(p: Probe, threshold: float) -> bool:
        if p.top < gate:
            return True
        return p.refusal_probability is not None and p.refusal_probability >= threshold

    print(f"\n{'refusal p':>9} {'answerable kept':>16} {'unanswerable refused':>21}")
    for threshold in LLM_GRID:
        kept = np.mean([not refused(p, threshold) for p in answerable])
        caught = np.mean([refused(p, threshold) for p in unanswerable])
        print(f"{threshold:9.3f} {kept:16.3f} {caught:21.3f}")
    # what the model would weigh; a question the gate refuses counts as refused at any value
    measured = np.array(
        [np.inf if p.refusal_probability is None else p.refusal_probability for p in answerable]
    )
    best = lowest_keeping(measured, LLM_GRID, keep)
    print(f"lowest refusal probability keeping >= {keep:.0%} of answerable answered: {best}")
    return best


def probe_model(
    settings: Settings, rows: list[tuple[str, str, bool, list[Hit]]], gate: float
) -> list[Probe]:
    embedder = build_answer_embedder(settings, build_embedder(settings))
    generator = build_generator(settings, embedder, "local")
    if not isinstance(generator, PromptedGenerator):  # pragma: no cover - "local" is prompted
        sys.exit("the local generator is not available")
    probes = []
    started = time.perf_counter()
    for i, (qid, question, answerable, hits) in enumerate(rows, start=1):
        top = top_score(hits)
        probability = None
        if top >= gate:
            probability = generator.refusal_probability(question, number_sources(hits))
        probes.append(Probe(qid, answerable, top, probability))
        shown = "gated" if probability is None else f"{probability:.4f}"
        print(
            f"  [{i}/{len(rows)}] {qid} {'answerable' if answerable else 'unanswerable'}: "
            f"{shown} (elapsed {time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return probes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=float, default=0.99, help="share of answerable to keep")
    parser.add_argument("--llm", action="store_true", help="also calibrate the local model's")
    parser.add_argument(
        "--llm-keep", type=float, default=0.90, help="share of answerable the model must answer"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the probes as JSON")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_runtime(settings)
    store = build_store(settings)
    rows = retrieved(build_retriever(settings, store, build_embedder(settings)), settings)
    scores = np.array([top_score(hits) for _, _, _, hits in rows])
    answerable = np.array([a for _, _, a, _ in rows])
    gate_table(scores[answerable], scores[~answerable], args.keep)
    if not args.llm:
        return
    gate = settings.refusal_threshold
    print(f"\nwith the gate at KB_REFUSAL_THRESHOLD={gate}:")
    probes = probe_model(settings, rows, gate)
    llm_table(probes, gate, args.llm_keep)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps([p.__dict__ for p in probes], indent=1) + "\n")


if __name__ == "__main__":
    main()
