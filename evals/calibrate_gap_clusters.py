"""Choose the gap clusters' distance threshold (assistant/gap_clusters.py DISTANCE_THRESHOLD).

The answerable questions of the golden and employee sets stand for topics: questions whose best
expected document is the same are one topic, and a gap cluster should hold one topic (a strict
stand-in: questions on one document ask for different facts of it, so recall stays low). For each
threshold the questions are clustered as the gap report clusters them, and the clusters are
compared with the topics by pair counting: precision (pairs put together that share a topic),
recall (pairs sharing a topic that were put together) and their F1. Needs no store. The
chosen value and the figures behind it are in assistant/gap_clusters.py (DISTANCE_THRESHOLD):

    python -m evals.calibrate_gap_clusters
"""

from __future__ import annotations

import sys
from collections import Counter
from itertools import combinations

from assistant.gap_clusters import agglomerate
from evals.golden import DATASETS, GoldenQuestion, load_dataset
from index.embedding import Embedder, SentenceTransformerEmbedder

GRID = tuple(round(0.30 + 0.05 * i, 2) for i in range(11))  # 0.30 .. 0.80


def pair_scores(clusters: list[list[int]], topics: list[str]) -> tuple[float, float, float]:
    together = {p for c in clusters for p in combinations(c, 2)}
    same = {(i, j) for i, j in combinations(range(len(topics)), 2) if topics[i] == topics[j]}
    hit = len(together & same)
    precision = hit / len(together) if together else 1.0
    recall = hit / len(same) if same else 1.0
    f1 = 2 * precision * recall / (precision + recall) if hit else 0.0
    return precision, recall, f1


def table(title: str, questions: list[GoldenQuestion], embedder: Embedder) -> None:
    by_topic = Counter(q.expected_docs[0] for q in questions)
    kept = [q for q in questions if by_topic[q.expected_docs[0]] >= 2]  # a topic needs a pair
    topics = [q.expected_docs[0] for q in kept]
    vectors = embedder.embed([q.question for q in kept])
    print(f"{title}: {len(kept)} questions, {len(set(topics))} topics (documents)")
    print("threshold  clusters  precision  recall  f1")
    for threshold in GRID:
        clusters = agglomerate(vectors, threshold)
        p, r, f = pair_scores(clusters, topics)
        print(f"{threshold:9.2f}  {len(clusters):8d}  {p:9.3f}  {r:6.3f}  {f:.3f}")


def main() -> int:
    embedder = SentenceTransformerEmbedder()
    golden = [q for q in load_dataset("golden") if len(q.expected_docs) == 1]
    table("golden, one expected document", golden, embedder)
    answerable = [q for name in DATASETS for q in load_dataset(name) if q.expected_docs]
    table("golden and employee, answerable (topic: best expected document)", answerable, embedder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
