"""Calibrate the refusal threshold (KB_REFUSAL_THRESHOLD) on the golden set.

The threshold gates generation: below it the assistant refuses without calling the model. It
must keep (nearly) every answerable question, so it is chosen as the highest value that keeps
at least `--keep` of them; what it refuses of the unanswerable ones is a bonus (the model's own
"I don't know" handles the rest). Run against an ingested store:

    KB_DATA_DIR=data python -m evals.calibrate_refusal [--keep 0.99]
"""

from __future__ import annotations

import argparse

import numpy as np

from api.assembly import build_embedder, build_retriever, build_store, configure_runtime
from api.settings import Settings
from evals.golden import load_golden
from index.filters import Principal


def top_scores(settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    """Best dense similarity of the top-5 hits, for answerable and unanswerable questions."""
    store = build_store(settings)
    retriever = build_retriever(settings, store, build_embedder(settings))
    answerable: list[float] = []
    unanswerable: list[float] = []
    for q in load_golden():
        hits = retriever.retrieve(
            q.question, 5, today=settings.today_date(), principal=Principal.of(*q.principal_groups)
        )
        top = max((h.dense_score or 0.0 for h in hits), default=0.0)
        (answerable if q.answerable else unanswerable).append(top)
    return np.array(answerable), np.array(unanswerable)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", type=float, default=0.99, help="share of answerable to keep")
    args = parser.parse_args()
    settings = Settings()
    configure_runtime(settings)
    answerable, unanswerable = top_scores(settings)
    print(f"{'threshold':>9} {'answerable kept':>16} {'unanswerable refused':>21}")
    best = 0.0
    for threshold in np.arange(0.20, 0.66, 0.05):
        kept = float((answerable >= threshold).mean())
        refused = float((unanswerable < threshold).mean())
        print(f"{threshold:9.2f} {kept:16.3f} {refused:21.3f}")
        if kept >= args.keep:
            best = float(threshold)
    print(f"answerable {len(answerable)}, unanswerable {len(unanswerable)}")
    print(f"highest threshold keeping >= {args.keep:.0%} of answerable: {best:.2f}")


if __name__ == "__main__":
    main()
