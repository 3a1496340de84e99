"""Calibrate the two refusal thresholds on the golden set's calibration part, and report them
on its report part (evals/golden.py `split_parts`: halves of each question type, by a hash of
the id). The tables show both parts; the thresholds are chosen on the calibration part only.

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
from evals.golden import GoldenQuestion, Part, load_golden, split_parts
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
    part: str = Part.CALIBRATION.value


def retrieved(
    retriever: HybridRetriever, settings: Settings, questions: Sequence[GoldenQuestion]
) -> list[tuple[str, str, bool, list[Hit]]]:
    """(id, question, answerable, hits) for each question, as its asker retrieves."""
    out = []
    for q in questions:
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


def gate_rates(probes: Sequence[Probe], threshold: float) -> tuple[float, float]:
    """(share of answerable kept, share of unanswerable refused) by the gate at `threshold`."""
    kept = [p.top >= threshold for p in probes if p.answerable]
    refused = [p.top < threshold for p in probes if not p.answerable]
    return share(kept), share(refused)


def llm_refused(p: Probe, gate: float, threshold: float) -> bool:
    """Refused by the gate (top < gate) or by the model (probability >= threshold)."""
    if p.top < gate:
        return True
    return p.refusal_probability is not None and p.refusal_probability >= threshold


def llm_rates(probes: Sequence[Probe], gate: float, threshold: float) -> tuple[float, float]:
    """(share of answerable answered, share of unanswerable refused) by gate and model."""
    kept = [not llm_refused(p, gate, threshold) for p in probes if p.answerable]
    caught = [llm_refused(p, gate, threshold) for p in probes if not p.answerable]
    return share(kept), share(caught)


def share(flags: Sequence[bool]) -> float:
    return float(np.mean(flags)) if flags else float("nan")


def of_part(probes: Sequence[Probe], part: Part) -> list[Probe]:
    return [p for p in probes if p.part == part.value]


HEADER = (
    f"{'':>9} {'calibration part':^38} {'report part':^38}\n"
    f"{'':>9} {'answerable kept':>16} {'unanswerable refused':>21} "
    f"{'answerable kept':>16} {'unanswerable refused':>21}"
)


def _counts(probes: Sequence[Probe]) -> str:
    answerable = sum(p.answerable for p in probes)
    return f"{answerable} answerable + {len(probes) - answerable} unanswerable"


def gate_table(probes: Sequence[Probe], keep: float) -> float:
    """The gate grid on both parts; the threshold is chosen on the calibration part."""
    calibration, report = of_part(probes, Part.CALIBRATION), of_part(probes, Part.REPORT)
    print(f"{'threshold':>9}" + HEADER[9:])
    for threshold in GATE_GRID:
        cells = [*gate_rates(calibration, threshold), *gate_rates(report, threshold)]
        print(f"{threshold:9.2f} " + " ".join(f"{c:16.3f} {d:21.3f}" for c, d in _pairs(cells)))
    tops = np.array([p.top for p in calibration if p.answerable])
    best = highest_keeping(tops, GATE_GRID, keep)
    print(f"calibration part: {_counts(calibration)}; report part: {_counts(report)}")
    print(f"highest threshold keeping >= {keep:.0%} of answerable (calibration part): {best:.2f}")
    kept, refused = gate_rates(report, best)
    print(
        f"on the report part at {best:.2f}: answerable kept {kept:.3f}, unanswerable refused "
        f"{refused:.3f}"
    )
    return best


def llm_table(probes: Sequence[Probe], gate: float, keep: float) -> float:
    """The model's refusal grid on both parts (a question is refused by the gate or by the
    model); the threshold is chosen on the calibration part."""
    calibration, report = of_part(probes, Part.CALIBRATION), of_part(probes, Part.REPORT)
    print(f"\n{'refusal p':>9}" + HEADER[9:])
    for threshold in LLM_GRID:
        cells = [*llm_rates(calibration, gate, threshold), *llm_rates(report, gate, threshold)]
        print(f"{threshold:9.3f} " + " ".join(f"{c:16.3f} {d:21.3f}" for c, d in _pairs(cells)))
    # what the model would weigh; a question the gate refuses counts as refused at any value
    measured = np.array(
        [
            np.inf if p.refusal_probability is None else p.refusal_probability
            for p in calibration
            if p.answerable
        ]
    )
    best = lowest_keeping(measured, LLM_GRID, keep)
    print(
        f"lowest refusal probability keeping >= {keep:.0%} of answerable answered "
        f"(calibration part): {best}"
    )
    kept, caught = llm_rates(report, gate, best)
    print(
        f"on the report part at {best}: answerable answered {kept:.3f}, unanswerable refused "
        f"{caught:.3f}"
    )
    return best


def _pairs(cells: Sequence[float]) -> list[tuple[float, float]]:
    return [(cells[i], cells[i + 1]) for i in range(0, len(cells), 2)]


def probe_model(
    settings: Settings,
    rows: list[tuple[str, str, bool, list[Hit]]],
    gate: float,
    parts: dict[str, Part],
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
        probes.append(Probe(qid, answerable, top, probability, parts[qid].value))
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
    questions = load_golden()
    parts = split_parts(questions)
    rows = retrieved(
        build_retriever(settings, store, build_embedder(settings)), settings, questions
    )
    gate_probes = [Probe(i, a, top_score(hits), None, parts[i].value) for i, _, a, hits in rows]
    gate_table(gate_probes, args.keep)
    if not args.llm:
        return
    gate = settings.refusal_threshold
    print(f"\nwith the gate at KB_REFUSAL_THRESHOLD={gate}:")
    probes = probe_model(settings, rows, gate, parts)
    llm_table(probes, gate, args.llm_keep)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps([p.__dict__ for p in probes], indent=1) + "\n")


if __name__ == "__main__":
    main()
