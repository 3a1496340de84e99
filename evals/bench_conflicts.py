"""Measure the conflict report (assistant/conflicts.py) on an ingested store: print every pair
it reports, and count them against the labelled true conflicts of
evals/datasets/conflicts.jsonl (document pairs and the detail they disagree on).

    KB_DATA_DIR=/tmp/conflicts-data kb ingest corpus
    KB_DATA_DIR=/tmp/conflicts-data python -m evals.bench_conflicts [--similarity 0.6]

A reported pair is true when its two documents are a labelled pair; a labelled pair no
reported pair covers is missed. Read the false ones: a new true conflict belongs in the
labels, with its detail.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from api.assembly import build_embedder, build_store, configure_runtime
from api.settings import Settings
from assistant.conflicts import SIMILARITY, ConflictFinder
from assistant.querylog import QueryLog
from index.filters import Principal

LABELS = Path(__file__).parent / "datasets" / "conflicts.jsonl"


def load_labels(path: Path = LABELS) -> dict[frozenset[str], str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {frozenset((r["a"], r["b"])): r["detail"] for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--similarity", type=float, default=SIMILARITY)
    args = parser.parse_args()
    settings = Settings()
    configure_runtime(settings)
    log = QueryLog(settings.query_log_path)
    finder = ConflictFinder(
        build_store(settings), log, build_embedder(settings), similarity=args.similarity
    )
    report = finder.report(Principal.of(admin=True))
    log.close()
    labels = load_labels()
    found: set[frozenset[str]] = set()
    true = false = 0
    for c in report.conflicts:
        pair = frozenset((c.a.doc_id, c.b.doc_id))
        verdict = "TRUE " if pair in labels else "false"
        true, false = (true + 1, false) if pair in labels else (true, false + 1)
        found.add(pair)
        print(f"{verdict} {c.similarity:.3f} {c.a.doc_id} <> {c.b.doc_id}")
        print(f"      {c.a.sentence}\n      {c.b.sentence}")
    missed = [labels[p] for p in labels if p not in found]
    for detail in missed:
        print(f"MISSED {detail}")
    print(
        f"similarity {args.similarity}: {len(report.conflicts)} pairs reported, {true} true, "
        f"{false} false; labelled conflicts found {len(labels) - len(missed)} of {len(labels)}"
    )
    for use in report.cited_superseded + report.missing_successor:
        print(f"superseded {use.doc_id}: cited {use.cited_recently}, by {use.superseded_by}")


if __name__ == "__main__":
    main()
