"""Context metrics: what an answer is grounded on, before any generation. Pure functions over
texts and document ids, no model, no store (used by evals/bench_context.py, tested in
tests/test_context_metrics.py).

- key-fact recall in the context: the facts found in the sources' text, normalised as answers
  are scored (evals/answers.py `key_fact_recall`);
- key-fact recall in the prompt: the same in what the prompted model reads of the sources (the
  user message without the question, so a fact the question itself names does not count);
- expected-document recall: the share of the expected documents among the sources;
- size: words, and approximate tokens (words x TOKENS_PER_WORD).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evals.answers import key_fact_recall, mean, rate
from evals.benchkit import percentiles

# A rule of thumb for English prose under BPE tokenizers (not measured on our model): good
# enough to compare context sizes between runs, not to check a context window.
TOKENS_PER_WORD = 1.3


def words(text: str) -> int:
    return len(text.split())


def approx_tokens(text: str) -> int:
    return round(words(text) * TOKENS_PER_WORD)


def user_message(messages: Sequence[dict[str, str]]) -> str:
    """The last user message of a chat prompt: the sources and the question."""
    users = [m["content"] for m in messages if m.get("role") == "user"]
    if not users:
        raise ValueError("the prompt has no user message")
    return users[-1]


def without_question(text: str, question: str) -> str:
    """`text` with the question taken out, so only what the sources say is scored."""
    return text.replace(question, " ") if question else text


def doc_recall(sources: Iterable[str], expected: Sequence[str]) -> float | None:
    """Share of the expected documents among the sources' documents."""
    if not expected:
        return None
    present = set(sources)
    return sum(d in present for d in expected) / len(expected)


@dataclass(frozen=True)
class ContextRow:
    """The context metrics of one question. Fact and document recalls are None for an
    unanswerable question, prompt figures None when no prompted generator was built."""

    key: str
    group: str  # question type
    answerable: bool
    gated: bool  # the best relevance is under the refusal threshold: refused before generating
    top: float
    prepare_ms: float
    sources: int
    distinct_docs: int
    context_words: int
    context_tokens: int
    fact_recall_context: float | None = None
    fact_recall_prompt: float | None = None
    doc_recall: float | None = None
    prompt_words: int | None = None
    prompt_tokens: int | None = None
    forbidden_in_context: tuple[str, ...] = ()
    must_warn_stale: bool = False
    stale_source: bool = False  # some source is past its review date
    missing_facts: tuple[str, ...] = ()  # key facts absent from the context
    asked: str = ""  # the question retrieved for: a follow-up made to stand alone

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["forbidden_in_context"] = list(self.forbidden_in_context)
        out["missing_facts"] = list(self.missing_facts)
        return out


def score_context(
    *,
    key: str,
    group: str,
    facts: Sequence[str],
    expected: Sequence[str],
    forbidden: Sequence[str],
    source_docs: Sequence[str],
    context: str,
    prompt: str | None,
    top: float,
    threshold: float,
    prepare_ms: float,
    must_warn_stale: bool = False,
    stale_source: bool = False,
    asked: str = "",
) -> ContextRow:
    """One question's row: `source_docs` are the sources' document ids (one per source),
    `context` their text joined, `prompt` what the model reads (None: no prompted model)."""
    answerable = bool(expected)
    missing = tuple(f for f in facts if not key_fact_recall(context, [f]))
    return ContextRow(
        key=key,
        group=group,
        answerable=answerable,
        gated=top < threshold,
        top=round(top, 4),
        prepare_ms=round(prepare_ms, 1),
        sources=len(source_docs),
        distinct_docs=len(set(source_docs)),
        context_words=words(context),
        context_tokens=approx_tokens(context),
        fact_recall_context=key_fact_recall(context, facts) if answerable else None,
        fact_recall_prompt=key_fact_recall(prompt, facts)
        if answerable and prompt is not None
        else None,
        doc_recall=doc_recall(source_docs, expected),
        prompt_words=None if prompt is None else words(prompt),
        prompt_tokens=None if prompt is None else approx_tokens(prompt),
        forbidden_in_context=tuple(sorted(set(source_docs) & set(forbidden))),
        must_warn_stale=must_warn_stale,
        stale_source=stale_source,
        missing_facts=missing if answerable else (),
        asked=asked,
    )


def _mean_of(rows: Sequence[ContextRow], field: str, digits: int = 1) -> float | None:
    values = [getattr(r, field) for r in rows if getattr(r, field) is not None]
    return round(sum(values) / len(values), digits) if values else None


def summarize(rows: Sequence[ContextRow]) -> dict[str, Any]:
    """Rates over answerable rows (the gate also over unanswerable ones), sizes averaged over
    answerable rows, prepare() time over all rows."""
    answerable = [r for r in rows if r.answerable]
    unanswerable = [r for r in rows if not r.answerable]
    stale = [r for r in answerable if r.must_warn_stale]
    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "fact_recall_context": mean(r.fact_recall_context for r in answerable),
        "fact_recall_prompt": mean(r.fact_recall_prompt for r in answerable),
        "doc_recall": mean(r.doc_recall for r in answerable),
        "distinct_docs": _mean_of(answerable, "distinct_docs", 2),
        "context_words": _mean_of(answerable, "context_words"),
        "context_tokens": _mean_of(answerable, "context_tokens"),
        "prompt_words": _mean_of(answerable, "prompt_words"),
        "prompt_tokens": _mean_of(answerable, "prompt_tokens"),
        "gated_answerable": rate(r.gated for r in answerable),
        "gated_unanswerable": rate(r.gated for r in unanswerable),
        "forbidden_in_context": sum(bool(r.forbidden_in_context) for r in rows),
        "stale_source_when_must_warn": rate(r.stale_source for r in stale),
        "prepare_ms": percentiles([r.prepare_ms for r in rows], (50, 95), digits=1),
    }


def by_type(rows: Sequence[ContextRow]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[ContextRow]] = {}
    for r in rows:
        groups.setdefault(r.group, []).append(r)
    return {g: summarize(groups[g]) for g in sorted(groups)}
