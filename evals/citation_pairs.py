"""Labelled claim-source pairs for the citation checker, built from a golden question and the
sources it was answered from (evals/sweep_constants.py measures the checker on them).

A claim is a sentence that states key facts: a sentence of the reference answer ("reference",
a paraphrase as a model writes one), or the first sentence of an expected source stating a key
fact ("document", as the extractive composer quotes one). Its positives are the sources of
expected documents that state all its key facts (a document claim's own source excluded: it
supports its own sentence trivially); its negatives are the sources of other documents that
state none of them. Facts are found as key facts are scored (evals/answers.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evals.answers import key_fact_recall
from index.sentences import split_sentences

SourceText = tuple[int, str, str]  # source number, document id, the text the checker reads


@dataclass(frozen=True)
class Claim:
    qid: str
    kind: str  # "reference" or "document"
    text: str
    facts: tuple[str, ...]  # the key facts it states
    positives: tuple[int, ...]  # source numbers
    negatives: tuple[int, ...]


def states(text: str, fact: str) -> bool:
    """The text contains the key fact, case- and whitespace-insensitively."""
    return key_fact_recall(text, [fact]) == 1.0


def claims_of(
    qid: str,
    reference: str,
    facts: Sequence[str],
    expected: Sequence[str],
    sources: Sequence[SourceText],
) -> list[Claim]:
    """The reference sentences stating a key fact, then for each key fact the first sentence
    stating it in the first expected source that does (each sentence once); claims with
    neither a positive nor a negative are left out."""

    def claim(kind: str, text: str, found: tuple[str, ...], origin: int | None = None) -> Claim:
        positives = [
            n
            for n, doc, body in sources
            if doc in expected and n != origin and all(states(body, f) for f in found)
        ]
        negatives = [
            n
            for n, doc, body in sources
            if doc not in expected and not any(states(body, f) for f in found)
        ]
        return Claim(qid, kind, text, found, tuple(positives), tuple(negatives))

    out = []
    for sentence in split_sentences(reference):
        found = tuple(f for f in facts if states(sentence, f))
        if found:
            out.append(claim("reference", sentence, found))
    quoted: set[str] = set()
    for fact in facts:
        origin = next((s for s in sources if s[1] in expected and states(s[2], fact)), None)
        if origin is None:
            continue
        sentence = next((s for s in split_sentences(origin[2]) if states(s, fact)), "")
        if sentence and sentence not in quoted:
            quoted.add(sentence)
            out.append(claim("document", sentence, (fact,), origin[0]))
    return [c for c in out if c.positives or c.negatives]


def rates(
    positives: Sequence[float], negatives: Sequence[float], threshold: float
) -> dict[str, float | None]:
    """Share of positives supported (support >= threshold), of negatives rejected, and their
    mean (balanced accuracy); None where a side is empty."""
    supported = float(np.mean([s >= threshold for s in positives])) if positives else None
    rejected = float(np.mean([s < threshold for s in negatives])) if negatives else None
    both = None if supported is None or rejected is None else (supported + rejected) / 2
    return {"supported": _r(supported), "rejected": _r(rejected), "balanced": _r(both)}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
