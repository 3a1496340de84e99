"""Answer-quality metrics over `Answer` objects: pure functions, no model, no store.

Used by `evals/bench_answers.py`; each function is small enough to test on fixed inputs
(tests/test_eval_metrics.py).

- citation match (contoso_hr): the answer is not refused and one of its citations comes from
  the reference file and page N-1..N+1 (the reference is the `[file.pdf#page=N]` ending `truth`);
- faithfulness: the share of the final answer's cited sentences whose cited sources all carry a
  support of at least the checker's threshold. The checker keeps a citation only when its
  support clears that threshold, so after checking this share is 1.0 by construction unless
  the product changes; the informative companion is `removed` (sentences the checker dropped,
  `len(answer.unsupported)`) and the share before checking, supported / (supported + removed);
- golden set: key-fact recall, expected-document hit, forbidden-document leaks, stale warnings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, TypeVar

from assistant.citations import split_cited
from assistant.service import Answer

T = TypeVar("T")

REFERENCE = re.compile(r"\[([^\[\]#]+\.pdf)#page=(\d+)\]\s*$")
PAGE_TOLERANCE = 1
_WARNING_LINE = re.compile(r"^\s*Warning:", re.I)
_SPACE = re.compile(r"\s+")


# -- contoso_hr reference ---------------------------------------------------------------------


@dataclass(frozen=True)
class PageRef:
    """The reference source of a contoso_hr answer: a PDF file name and a 1-based page."""

    file: str
    page: int

    def matches(self, path: str, page: int | None, tolerance: int = PAGE_TOLERANCE) -> bool:
        if page is None or PurePosixPath(path).name != self.file:
            return False
        return abs(page - self.page) <= tolerance


def parse_reference(truth: str) -> PageRef:
    """The `[file.pdf#page=N]` at the end of a contoso_hr `truth`."""
    found = REFERENCE.search(truth)
    if found is None:
        raise ValueError("no [file.pdf#page=N] reference at the end of the truth")
    return PageRef(found.group(1), int(found.group(2)))


def citation_match(answer: Answer, ref: PageRef, tolerance: int = PAGE_TOLERANCE) -> bool:
    """Not refused, and some citation is the reference file at page N-1..N+1 (any page a
    cited sentence came from)."""
    if answer.refused:
        return False
    return any(
        ref.matches(c.path, page, tolerance)
        for c in answer.citations
        for page in _pages(c.pages, c.page)
    )


def _pages(pages: list[int], page: int | None) -> list[int | None]:
    return [*pages] if pages else [page]


# -- faithfulness -----------------------------------------------------------------------------


def without_warning(text: str) -> str:
    """The answer without the trailing stale-source "Warning:" paragraph."""
    lines = text.rstrip().splitlines()
    while lines and (not lines[-1].strip() or _WARNING_LINE.match(lines[-1])):
        lines.pop()
    return "\n".join(lines)


def cited_sentences(text: str) -> list[tuple[str, list[int]]]:
    """(sentence, cited numbers) of a final answer, leaving out the warning line and connective
    sentences that cite nothing."""
    return [(s, cited) for s, cited in split_cited(without_warning(text)) if cited]


def sentence_supported(cited: Iterable[int], support: dict[int, float], threshold: float) -> bool:
    """Every cited number is a citation of the answer with support >= threshold."""
    numbers = list(cited)
    return bool(numbers) and all(support.get(n, -1.0) >= threshold for n in numbers)


@dataclass(frozen=True)
class Faithfulness:
    supported: int  # cited sentences of the final answer whose sources support them
    sentences: int  # cited sentences of the final answer
    removed: int  # sentences the checker dropped as unsupported

    @property
    def share(self) -> float | None:
        """Supported share of the final answer's cited sentences."""
        return self.supported / self.sentences if self.sentences else None

    @property
    def share_before_check(self) -> float | None:
        """Supported share of what the generator wrote, counting removed sentences."""
        total = self.sentences + self.removed
        return self.supported / total if total else None


def faithfulness(answer: Answer, threshold: float) -> Faithfulness:
    """Sentence support of an answer, from the support of its citations. A refused answer has
    no sentences (but may report removed ones: a refusal because nothing was supported)."""
    removed = len(answer.unsupported)
    if answer.refused:
        return Faithfulness(0, 0, removed)
    support = {c.n: c.support for c in answer.citations}
    sentences = cited_sentences(answer.answer)
    supported = sum(sentence_supported(cited, support, threshold) for _, cited in sentences)
    return Faithfulness(supported, len(sentences), removed)


# -- golden set -------------------------------------------------------------------------------


def _normalized(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def key_fact_recall(text: str, facts: Sequence[str]) -> float | None:
    """Share of the key facts found in the text, case- and whitespace-insensitively."""
    if not facts:
        return None
    haystack = _normalized(text)
    return sum(_normalized(f) in haystack for f in facts) / len(facts)


def doc_hit(answer: Answer, expected: Iterable[str]) -> bool:
    """Some citation is one of the expected documents (a refusal cites nothing)."""
    wanted = set(expected)
    return any(c.doc_id in wanted for c in answer.citations)


def leaked_docs(answer: Answer, forbidden: Iterable[str]) -> list[str]:
    """Forbidden documents the answer cites or names as related (in a refusal)."""
    banned = set(forbidden)
    shown = {c.doc_id for c in answer.citations} | {n.get("doc_id", "") for n in answer.nearby}
    return sorted(shown & banned)


def warned_stale(answer: Answer) -> bool:
    return bool(answer.warnings)


# -- selection and aggregation ----------------------------------------------------------------


def spread(items: Sequence[T], n: int | None) -> list[T]:
    """`n` items evenly spread over the sequence, in order (all when n is None or too big)."""
    if n is None or n >= len(items):
        return list(items)
    if n <= 0:
        return []
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def rate(flags: Iterable[bool]) -> float | None:
    values = list(flags)
    return round(sum(values) / len(values), 4) if values else None


def mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 4) if present else None


@dataclass(frozen=True)
class Scored:
    """The metrics of one answer. Fields that do not apply to its dataset or kind are None."""

    key: str
    group: str  # contoso: reference file; golden: question type
    answerable: bool
    refused: bool
    refusal_reason: str | None
    faith: Faithfulness
    first_token_ms: float | None
    total_ms: float | None
    wall_ms: float
    citation_match: bool | None = None
    key_fact_recall: float | None = None
    doc_hit: bool | None = None
    leaks: tuple[str, ...] = ()
    must_warn_stale: bool = False
    warned: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "group": self.group,
            "answerable": self.answerable,
            "refused": self.refused,
            "refusal_reason": self.refusal_reason,
            "cited_sentences": self.faith.sentences,
            "supported_sentences": self.faith.supported,
            "removed_sentences": self.faith.removed,
            "citation_match": self.citation_match,
            "key_fact_recall": self.key_fact_recall,
            "doc_hit": self.doc_hit,
            "leaks": list(self.leaks),
            "must_warn_stale": self.must_warn_stale,
            "warned": self.warned,
            "first_token_ms": self.first_token_ms,
            "total_ms": self.total_ms,
            "wall_ms": self.wall_ms,
        }


def faithfulness_summary(rows: Sequence[Scored]) -> dict[str, Any]:
    """Micro-averaged over the sentences of answered questions; removed per answered question."""
    answered = [r for r in rows if not r.refused]
    supported = sum(r.faith.supported for r in answered)
    sentences = sum(r.faith.sentences for r in answered)
    removed = sum(r.faith.removed for r in answered)
    return {
        "faithfulness": round(supported / sentences, 4) if sentences else None,
        "faithfulness_before_check": round(supported / (sentences + removed), 4)
        if sentences + removed
        else None,
        "cited_sentences": sentences,
        "removed_per_answer": round(removed / len(answered), 3) if answered else None,
        "removed_total_all_questions": sum(r.faith.removed for r in rows),
    }


def quality(rows: Sequence[Scored], golden: bool = False) -> dict[str, Any]:
    """Rates over a list of scored answers (timings are summarized by the caller); `golden`
    adds leaks and stale warnings."""
    answerable = [r for r in rows if r.answerable]
    unanswerable = [r for r in rows if not r.answerable]
    stale = [r for r in answerable if r.must_warn_stale]
    out: dict[str, Any] = {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "answered_rate": rate(not r.refused for r in answerable),
        "refusal_rate": rate(r.refused for r in unanswerable),
        **faithfulness_summary(rows),
    }
    matches = [r.citation_match for r in answerable if r.citation_match is not None]
    if matches:
        out["citation_match"] = rate(matches)
        out["citation_match_when_answered"] = rate(
            bool(r.citation_match) for r in answerable if not r.refused
        )
    recalls = [r.key_fact_recall for r in answerable if r.key_fact_recall is not None]
    if recalls:
        out["key_fact_recall"] = mean(recalls)
    hits = [r.doc_hit for r in answerable if r.doc_hit is not None]
    if hits:
        out["doc_hit"] = rate(hits)
    if golden:
        out["leaks"] = sum(bool(r.leaks) for r in rows)
        out["stale_questions"] = len(stale)
        out["stale_warning_rate"] = rate(r.warned for r in stale)
    return out


def refusal_reasons(rows: Sequence[Scored]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        if r.refused:
            reason = r.refusal_reason or "unknown"
            counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items()))


def by_group(rows: Sequence[Scored], golden: bool = False) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Scored]] = {}
    for r in rows:
        groups.setdefault(r.group, []).append(r)
    return {g: quality(groups[g], golden) for g in sorted(groups)}
