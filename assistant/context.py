"""Context assembly ("small to big"): from the ranked chunks of a search to the numbered
sources a generator reads.

Chunks are sized for the embedding window, not for answering: a procedure's steps, a table's
rows or a lesson's reasons are spread over several of them, and the best-ranked chunk is often
a document's introduction. So each ranked chunk brings in its section: the largest enclosing
section (by heading path) that fits the section budget (a procedure's budget is larger, so
that every step comes), else the chunk and its neighbours within the section. A table cut
from its header row opens back to its start. Chunks of one document merge in document order,
without the lines consecutive chunks repeat. Documents take turns: the best section of each
document comes before the second section of any, so a question about two things reads both,
until the word budget is spent. The result is what the prompt, the extractive composer and
the citation checker all read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assistant.sources import Source
from index.hits import Hit
from index.hybrid import join_chunks

# For each hit (by chunk id), the chunks of its document within a radius, in document order.
Surroundings = Callable[[Sequence[Hit]], dict[str, list[Hit]]]

_STEP = re.compile(r"^\s*(?:(?:step|phase|stage|gate)\s*\d+\b|\d+[.)]\s|[-*\u2022]\s)", re.I)
_STEP_HEADING = re.compile(r"^\s*(?:step|phase|stage|gate)\s*\d+\b", re.I)
_TABLE_ROW = re.compile(r"^[^|\n]*\S\s\|\s\S")


@dataclass(frozen=True)
class ContextOptions:
    """Budgets in words (a word is about 1.3 prompt tokens for the local model, whose prompt
    is read at roughly 100 tokens a second on two cores: evals/README.md, "Context
    assembly")."""

    documents: int = 4  # distinct documents given to the generator
    words: int = 500  # all sources together
    section_words: int = 320  # largest section brought in whole
    procedure_words: int = 600  # largest procedure (steps, a checklist) brought in whole
    radius: int = 12  # chunks read on each side of a ranked chunk to find its section


def assemble(
    hits: Sequence[Hit],
    surroundings: Surroundings,
    options: ContextOptions,
    *,
    procedure: bool = False,
    whole_steps: bool = True,
) -> list[Source]:
    """The numbered sources for ranked `hits` (best first); numbers follow the rank of each
    document's best hit. For a `procedure` question, the procedure with the most steps among
    the two best documents' sections and their surroundings comes whole, first of its
    document's spans."""
    documents: dict[str, list[Hit]] = {}
    for hit in hits:
        if hit.doc_id in documents or len(documents) < options.documents:
            documents.setdefault(hit.doc_id, []).append(hit)
    if not documents:
        return []
    windows = surroundings([h for group in documents.values() for h in group])
    spans = {
        doc: [
            _section(h, windows.get(h.chunk_id) or [h], options, procedure or whole_steps)
            for h in group
        ]
        for doc, group in documents.items()
    }
    if procedure:
        for doc in list(spans)[:2]:  # steps near a ranked chunk, though none of them ranked
            near = _procedures_near(documents[doc], windows, options)
            spans[doc].extend(span for span in near if span not in spans[doc])
    best = spans[next(iter(spans))][0]  # the best-ranked chunk's own section
    steps = _procedure_first(spans) if procedure else None
    chosen = _share_budget(spans, options.words, [best, steps] if steps else [best])
    sources: list[Source] = []
    for doc, group in documents.items():
        if chosen[doc]:
            parts = _merge(chosen[doc], group)
            chunks = tuple(sorted(chosen[doc], key=lambda h: h.chunk_index))
            sources.append(Source(n=len(sources) + 1, hits=tuple(parts), chunks=chunks))
    return sources


def _words(text: str) -> int:
    return len(text.split())


def _path(section: str) -> list[str]:
    return [part.strip() for part in section.split(" > ")] if section else []


def _section(
    hit: Hit, window: list[Hit], options: ContextOptions, whole_steps: bool = True
) -> list[Hit]:
    """The chunks of the largest section around `hit` that fits its budget, in order; with
    `whole_steps` a section of steps may take `procedure_words`. Without it (a follow-up that
    does not ask for a procedure, assistant/service.py) a fact in one step ("what approvals
    does that need?") brings its step, not the whole procedure, which filled the budget
    alone and left no room for a second document."""
    chunks = sorted(window, key=lambda h: h.chunk_index)
    at = next((i for i, h in enumerate(chunks) if h.chunk_id == hit.chunk_id), None)
    if at is None:
        return [hit]
    path = _path(hit.section)
    deepest = [hit]
    for level in range(0 if not path else 1, len(path) + 1):
        prefix = path[:level]

        def inside(chunk: Hit, level: int = level, prefix: list[str] = prefix) -> bool:
            # Text before the first heading (no path) is a section of its own.
            return _path(chunk.section)[:level] == prefix if prefix else not chunk.section

        lo, hi = at, at
        while lo > 0 and inside(chunks[lo - 1]):
            lo -= 1
        while hi < len(chunks) - 1 and inside(chunks[hi + 1]):
            hi += 1
        run = chunks[lo : hi + 1]
        deepest = run
        open_ended = (lo == 0 and chunks[0].chunk_index > 0 and level > 0) or (
            hi == len(chunks) - 1 and hi - at >= options.radius
        )
        text = join_chunks([h.text for h in run])
        steps = whole_steps and _is_procedure(text)
        budget = options.procedure_words if steps else options.section_words
        if not open_ended and _words(text) <= budget:
            return _with_table_start(run, chunks)
    return _with_table_start(_around(deepest, hit, options.section_words), chunks)


def _with_table_start(run: list[Hit], chunks: list[Hit]) -> list[Hit]:
    """The run, opened back to the start of a table it begins inside, so the table comes
    with its header row."""
    at = next(i for i, h in enumerate(chunks) if h.chunk_id == run[0].chunk_id)
    while (
        at > 0
        and _opens_in_table(run[0].text)
        and _TABLE_ROW.match(chunks[at - 1].text.splitlines()[-1] if chunks[at - 1].text else "")
    ):
        at -= 1
        run = [chunks[at], *run]
    return run


def _opens_in_table(text: str) -> bool:
    lines = text.splitlines()
    return bool(lines) and bool(_TABLE_ROW.match(lines[0]))


def _around(run: list[Hit], hit: Hit, budget: int) -> list[Hit]:
    """The hit and its nearest neighbours within `run`, as many as fit `budget` words."""
    at = next(i for i, h in enumerate(run) if h.chunk_id == hit.chunk_id)
    lo = hi = at
    spent = _words(hit.text)
    while True:
        grew = False
        for j in (hi + 1, lo - 1):
            if 0 <= j < len(run) and spent + _words(run[j].text) <= budget:
                spent += _words(run[j].text)
                lo, hi = min(lo, j), max(hi, j)
                grew = True
        if not grew:
            return run[lo : hi + 1]


def _is_procedure(text: str) -> bool:
    return _step_lines(text) >= 3


def _step_lines(text: str) -> float:
    """Lines that open a step; a "Step N" heading counts twice a list item."""
    lines = text.splitlines()
    return sum(bool(_STEP.match(line)) for line in lines) + sum(
        bool(_STEP_HEADING.match(line)) for line in lines
    )


def _procedures_near(
    group: Sequence[Hit], windows: dict[str, list[Hit]], options: ContextOptions
) -> list[list[Hit]]:
    """Procedures (runs of chunks under one top-level heading, with steps, within the
    procedure budget) in the surroundings of a document's ranked chunks: "how do we deploy
    X" ranks a playbook's introduction above its "Steps" section."""
    found: list[list[Hit]] = []
    for hit in group:
        chunks = sorted(windows.get(hit.chunk_id) or [hit], key=lambda h: h.chunk_index)
        runs: list[list[Hit]] = []
        for chunk in chunks:
            if runs and _path(runs[-1][-1].section)[:1] == _path(chunk.section)[:1]:
                runs[-1].append(chunk)
            else:
                runs.append([chunk])
        for run in runs:
            text = _text(run)
            if _is_procedure(text) and _words(text) <= options.procedure_words and run not in found:
                found.append(run)
    return found


def _procedure_first(spans: dict[str, list[list[Hit]]]) -> list[Hit] | None:
    """The first procedure among the spans of the two best documents, moved to the front of
    its document's spans (the documents keep their order: the best-ranked one always comes);
    None when neither has one."""
    doc, found = max(
        ((doc, span) for doc in list(spans)[:2] for span in spans[doc]),
        key=lambda item: _step_lines(_text(item[1])),
    )
    if not _is_procedure(_text(found)):
        return None
    spans[doc] = [found, *(s for s in spans[doc] if s is not found)]
    return found


def _text(run: list[Hit]) -> str:
    return join_chunks([h.text for h in run])


def _share_budget(
    spans: dict[str, list[list[Hit]]], words: int, always: Sequence[list[Hit]]
) -> dict[str, list[Hit]]:
    """Documents take turns, best first: each one's best span, then each one's next. A span
    that does not fit what is left is skipped, except the spans `always` comes: the best-ranked
    chunk's section and a procedure's steps, even past the budget. (When the procedure moved
    to the front of its document's spans and the budget was shared after it, "how do we label
    data?" read the data playbook's checklist and a later step, not the "Step 8: label" that
    ranked first, and was answered from a marketing FAQ about AI labels.)"""
    chosen: dict[str, dict[str, Hit]] = {doc: {} for doc in spans}
    spent = 0
    rounds = max(len(s) for s in spans.values())
    for turn in range(rounds):
        for doc, options in spans.items():
            if turn >= len(options):
                continue
            new = [h for h in options[turn] if h.chunk_id not in chosen[doc]]
            cost = _words(join_chunks([h.text for h in new]))
            forced = any(options[turn] is span for span in always)
            if new and (spent + cost <= words or forced):
                chosen[doc].update((h.chunk_id, h) for h in new)
                spent += cost
    return {doc: list(hits.values()) for doc, hits in chosen.items()}


def _merge(chunks: list[Hit], ranked: list[Hit]) -> list[Hit]:
    """Runs of consecutive chunks, each one passage (a hit whose context is the run's text),
    ordered by the best rank among the ranked hits they hold."""
    ordered = sorted(chunks, key=lambda h: h.chunk_index)
    runs: list[list[Hit]] = []
    for chunk in ordered:
        if runs and chunk.chunk_index == runs[-1][-1].chunk_index + 1:
            runs[-1].append(chunk)
        else:
            runs.append([chunk])
    rank = {h.chunk_id: i for i, h in enumerate(ranked)}
    passages = []
    for run in runs:
        best = min(run, key=lambda h: rank.get(h.chunk_id, len(rank)))
        pages = [p for h in run for p in (h.page, h.page_end) if p is not None]
        score = max((r.score for r in ranked if r.chunk_id in {h.chunk_id for h in run}), default=0)
        passages.append(
            (
                min(rank.get(h.chunk_id, len(rank)) for h in run),
                best.with_(
                    context=join_chunks([h.text for h in run]),
                    page=min(pages) if pages else None,
                    page_end=max(pages) if pages else None,
                    score=score,
                    dense_score=next(
                        (r.dense_score for r in ranked if r.chunk_id == best.chunk_id), None
                    ),
                ),
            )
        )
    return [hit for _, hit in sorted(passages, key=lambda item: item[0])]
