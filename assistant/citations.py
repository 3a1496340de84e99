"""Citation checking after generation.

The answer is split into sentences. For every sentence, each retrieved source gets a support
score: the best cosine similarity between the sentence and any sentence of the source (the
embedding model, so paraphrases count), blended with lexical coverage (the share of the
sentence's content words found in the source, so numbers and names must really be there).
A citation that its source does not support moves to the source that does; a sentence no
source supports is removed from the answer and reported; a supported sentence without a
citation gets one. Citations keep the numbers of the sources as retrieved, so that text
already streamed and the checked answer agree. A trailing fragment (generation cut off by the
token limit) is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from assistant.sources import Source
from index.embedding import Embedder
from index.keyword import english_stopwords

_CITE = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(*])")
_NOT_AN_END = re.compile(r"(?:^|\s)(?:\d+|[a-z]|e\.g|i\.e|etc|vs|no|dr|mr|ms|approx)\.$", re.I)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+|\d+(?:[.,:/-]\d+)*%?")
_STOP = english_stopwords()
_SOURCE_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class CheckOptions:
    threshold: float = 0.55  # support below this is "not supported"
    lexical_weight: float = 0.4
    min_content_words: int = 3  # shorter sentences ("Here are the steps:") need no citation


@dataclass
class CheckedSentence:
    text: str  # without citation markers
    sources: list[int]  # source numbers (as retrieved) that support it
    support: float  # best support among its sources
    claimed: list[int] = field(default_factory=list)  # what the generator cited
    pages: dict[int, int | None] = field(default_factory=dict)  # source -> best chunk's page


@dataclass
class CheckedAnswer:
    sentences: list[CheckedSentence]
    dropped: list[CheckedSentence]
    reattributed: int

    def cited(self) -> list[int]:
        """Source numbers in order of first citation."""
        seen: list[int] = []
        for s in self.sentences:
            for n in s.sources:
                if n not in seen:
                    seen.append(n)
        return seen


def _fragments(text: str) -> list[str]:
    """Lines, then sentences within a line; a list number ("1.") or an abbreviation ("e.g.")
    does not end a sentence."""
    out: list[str] = []
    for line in text.splitlines():
        merged: list[str] = []
        for piece in _SENTENCE_END.split(line.strip()):
            if merged and _NOT_AN_END.search(merged[-1]):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        out.extend(m for m in merged if m.strip())
    return out


def split_sentences(answer: str) -> list[tuple[str, list[int]]]:
    """(sentence without markers, cited numbers); markers after a sentence's full stop
    ("... done. [2]") belong to it."""
    out: list[tuple[str, list[int]]] = []
    for raw in _fragments(answer.strip()):
        if not raw.strip():
            continue
        numbers = [int(n) for group in _CITE.findall(raw) for n in group.split(",")]
        text = _CITE.sub("", raw).strip()
        if not text and out:  # a stray marker group: give it to the sentence before
            out[-1][1].extend(numbers)
            continue
        if text:
            out.append((text, numbers))
    return out


def _cut_off(text: str) -> bool:
    """The unfinished end of an answer stopped by the token limit ("... and then By")."""
    return not text.rstrip().endswith((".", "!", "?", ":", ")", '"')) and len(text.split()) < 6


def _connective(text: str, options: CheckOptions) -> bool:
    """Text that states nothing to check: "Here are the steps:", "In short,"."""
    lead_in = text.endswith(":") and len(text.split()) <= 8
    return lead_in or len(content_words(text)) < options.min_content_words


def content_words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text) if w.lower() not in _STOP}


def check_citations(
    answer: str, sources: Sequence[Source], embedder: Embedder, options: CheckOptions
) -> CheckedAnswer:
    parsed = split_sentences(answer)
    if parsed and _cut_off(parsed[-1][0]):
        parsed = parsed[:-1]
    if not parsed or not sources:
        return CheckedAnswer([], [CheckedSentence(t, [], 0.0, c) for t, c in parsed], 0)
    support, best_hit = _support_matrix([t for t, _ in parsed], sources, embedder, options)
    by_number = {s.n: i for i, s in enumerate(sources)}
    kept: list[CheckedSentence] = []
    dropped: list[CheckedSentence] = []
    moved = 0
    for row, (text, claimed) in enumerate(parsed):
        scores = support[row]
        valid = [n for n in claimed if n in by_number]
        good = [n for n in valid if scores[by_number[n]] >= options.threshold]
        best = int(np.argmax(scores))
        if good:
            chosen = good
        elif scores[best] >= options.threshold:
            chosen = [sources[best].n]
            moved += bool(claimed)
        elif _connective(text, options) and not claimed:
            kept.append(CheckedSentence(text, [], 0.0, claimed))  # connective text
            continue
        else:
            dropped.append(CheckedSentence(text, [], float(scores[best]), claimed))
            continue
        top = max(float(scores[by_number[n]]) for n in chosen)
        pages = {n: best_hit[row][by_number[n]] for n in chosen}
        kept.append(CheckedSentence(text, chosen, top, claimed, pages))
    return CheckedAnswer(kept, dropped, moved)


def _support_matrix(
    sentences: list[str], sources: Sequence[Source], embedder: Embedder, options: CheckOptions
) -> tuple[np.ndarray, list[list[int | None]]]:
    """support[i, j]: how well source j supports answer sentence i, in 0..1; and the page of
    the chunk of source j that supports sentence i best."""
    pieces: list[str] = []
    owner: list[int] = []
    page: list[int | None] = []
    for j, source in enumerate(sources):
        for hit, text in source.passages():
            for piece in _SOURCE_SENTENCE.split(text):
                if piece.strip():
                    pieces.append(piece.strip())
                    owner.append(j)
                    page.append(hit.page)
    vectors = embedder.embed([*sentences, *pieces])
    sims = vectors[: len(sentences)] @ vectors[len(sentences) :].T
    semantic = np.zeros((len(sentences), len(sources)), dtype=np.float32)
    best_page: list[list[int | None]] = [[None] * len(sources) for _ in sentences]
    owners = np.asarray(owner)
    for j in range(len(sources)):
        columns = np.flatnonzero(owners == j)
        if columns.size:
            semantic[:, j] = sims[:, columns].max(axis=1)
            for i, arg in enumerate(sims[:, columns].argmax(axis=1)):
                best_page[i][j] = page[int(columns[arg])]
    lexical = np.zeros_like(semantic)
    source_words = [content_words(s.text) for s in sources]
    for i, sentence in enumerate(sentences):
        words = content_words(sentence)
        if words:
            for j, vocabulary in enumerate(source_words):
                lexical[i, j] = len(words & vocabulary) / len(words)
    w = options.lexical_weight
    return np.clip((1 - w) * semantic + w * lexical, 0.0, 1.0), best_page
