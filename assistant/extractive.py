"""The extractive composer: answers without an LLM, in the shape the question asks for
(assistant/shapes.py), from sentences of the sources, each cited. Fast, deterministic, always
available.

- a procedure: the steps of the best-matching source that has some ("Step 3: ...", a numbered
  or bulleted list), numbered in the document's order, each with the first sentences under it;
- a comparison: the closest sentences of each source, one line per source;
- prior projects: one line per project document, its metadata (project, department, vendor,
  outcome, year) and its sentence closest to the question;
- a fact: the sentences closest to the question, favouring the best source.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from assistant.actions import reads_as_actions
from assistant.prompt import Turn
from assistant.shapes import PROJECT_TYPES, Shape, shape_of
from assistant.sources import Source
from index.embedding import Embedder
from index.sentences import LIST_MARKER, split_line

_STEP_HEADING = re.compile(r"^\s*(?:step|phase|stage|gate)\s*(\d+)\s*[:.)-]?\s*(.*)$", re.I)
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+")


@dataclass(frozen=True)
class ExtractiveOptions:
    """Chosen on the golden set's answerable questions (evals/README.md, "Answer shapes")."""

    fact_sentences: int = 4  # sentences of a fact answer
    min_similarity: float = 0.35  # a sentence less similar to the question is never quoted
    best_source_bonus: float = 0.1  # favours sentences of the best-ranked source
    max_steps: int = 12
    step_words: int = 60  # words quoted under one step
    per_source: int = 3  # sources a comparison or a project list covers
    procedure_margin: float = 0.1  # a source with steps this much less similar still leads
    list_margin: float = 0.2  # a list this much less similar than the closest sentence is off


@dataclass(frozen=True)
class _Candidate:
    n: int  # source number
    passage: int
    position: int
    text: str


class ExtractiveGenerator:
    name = "extractive"

    def __init__(self, embedder: Embedder, options: ExtractiveOptions | None = None) -> None:
        self._embedder = embedder
        self._options = options or ExtractiveOptions()

    def stream(self, question: str, sources: Sequence[Source]) -> Iterator[str]:
        candidates, similarity = self._candidates(question, sources)
        if not candidates:
            return
        shape = shape_of(question, sources)
        lines = self._shaped(shape, question, sources, candidates, similarity)
        for line in lines or self._fact(candidates, similarity):
            yield line + "\n"

    def rewrite(self, history: Sequence[Turn], question: str) -> str | None:
        return None

    def quote(
        self, question: str, sources: Sequence[Source], shapes: Collection[Shape]
    ) -> list[str]:
        """For a question of one of `shapes`, the lines `stream` gives it when they come in
        that shape (a procedure's steps, one line per project), numbered or bulleted and
        cited; else none. Prompted generators quote them rather than have a model retell them
        (assistant/generators.py)."""
        shape = shape_of(question, sources)
        if shape not in shapes:
            return []
        candidates, similarity = self._candidates(question, sources)
        if not candidates:
            return []
        return self._shaped(shape, question, sources, candidates, similarity)

    def _shaped(
        self,
        shape: Shape,
        question: str,
        sources: Sequence[Source],
        candidates: list[_Candidate],
        similarity: np.ndarray,
    ) -> list[str]:
        """The lines of a shaped answer (steps, one line per source or per project); none
        for a fact, or when the sources give nothing in that shape."""
        if shape is Shape.PROCEDURE:
            return self._procedure(question, sources, candidates, similarity)
        if shape in (Shape.COMPARISON, Shape.PROJECTS):
            projects = shape is Shape.PROJECTS
            return self._per_source(sources, candidates, similarity, projects=projects)
        return []

    def _candidates(
        self, question: str, sources: Sequence[Source]
    ) -> tuple[list[_Candidate], np.ndarray]:
        """The quotable sentences of the sources and their similarity to the question; none
        when even the closest is under `min_similarity`."""
        candidates = [
            _Candidate(source.n, p, i, sentence)
            for source in sources
            for p, (_, text) in enumerate(source.passages())
            for i, sentence in enumerate(quotable(text))
        ]
        if not candidates:
            return [], np.zeros(0)
        vectors = self._embedder.embed([question, *(c.text for c in candidates)])
        similarity = vectors[1:] @ vectors[0]
        if float(similarity.max()) < self._options.min_similarity:
            return [], np.zeros(0)
        return candidates, similarity

    def _fact(self, candidates: list[_Candidate], similarity: np.ndarray) -> list[str]:
        o = self._options
        lead = min(c.n for c in candidates)  # the best-ranked source that has a sentence
        bonus = np.array([o.best_source_bonus if c.n == lead else 0.0 for c in candidates])
        order = np.argsort(-(similarity + bonus), kind="stable")
        chosen = [int(i) for i in order[: o.fact_sentences] if similarity[i] >= o.min_similarity]
        chosen.sort(key=lambda i: (candidates[i].n, candidates[i].passage, candidates[i].position))
        return _unique(f"{candidates[i].text} [{candidates[i].n}]" for i in chosen)

    def _procedure(
        self,
        question: str,
        sources: Sequence[Source],
        candidates: list[_Candidate],
        similarity: np.ndarray,
    ) -> list[str]:
        """The list of steps that is about the question: among the lists (the "Step N"
        headings of a section, a numbered or bulleted run of items that reads as actions:
        assistant/actions.py) of the sources whose closest sentence is within
        `procedure_margin` of the closest of all, the one whose
        title, heading and first items are most similar to the question (on a tie, the
        better-ranked source's), if that is within `list_margin` of the closest sentence.
        Taking the first list of the best-ranked source instead answered 7 of 22 golden
        procedure questions with another procedure of the same document (the courses
        instead of the intake steps). Project documents (lessons learned, showcases,
        evaluations) are never a procedure's source."""
        o = self._options
        best = {s.n: _best_of(s.n, candidates, similarity) for s in sources}
        top = max(best.values())
        lists = [
            (source.n, f"{source.best.title}: {found.lead}", found.steps)
            for source in sources
            if best[source.n] >= top - o.procedure_margin
            and source.best.doc_type not in PROJECT_TYPES  # numbered lessons are no steps
            for hit, text in source.passages()
            for found in step_lists(text, o.step_words, hit.section)
            if found.headed or reads_as_actions(found.steps)  # not courses, rules or fields
        ]
        if not lists:
            return self._one_step(sources, best, top)
        described = [f"{lead}\n" + "\n".join(steps[:3]) for _, lead, steps in lists]
        vectors = self._embedder.embed([question, *described])
        scores = vectors[1:] @ vectors[0]
        chosen = min(range(len(lists)), key=lambda i: (-round(float(scores[i]), 2), lists[i][0]))
        if float(scores[chosen]) < top - o.list_margin:
            return self._one_step(sources, best, top)  # no list is about the question
        n, _, steps = lists[chosen]
        return [f"{i}. {step} [{n}]" for i, step in enumerate(steps[: o.max_steps], start=1)]

    def _one_step(self, sources: Sequence[Source], best: dict[int, float], top: float) -> list[str]:
        """When no list is about the question but the best-ranked chunk is one step of a
        procedure ("Step 8: label"), what that step says, a sentence a line, in order: the
        question asks for a part of the procedure, and the step is its answer. Else none."""
        source = sources[0]
        hit = source.best
        step = _STEP_HEADING.match(hit.section.rsplit(" > ", 1)[-1])
        if not step or hit.doc_type in PROJECT_TYPES:
            return []
        if best[source.n] < top - self._options.procedure_margin:
            return []
        heading = step.group(0).strip()
        text = next((t for h, t in source.passages() if h.section == hit.section), "")
        body = "\n".join(line for line in text.splitlines() if line.strip() != heading)
        sentences = [s.removeprefix("- ") for s in quotable(body)][: self._options.max_steps]
        if len(sentences) < 2:
            return []
        return [f"{i}. {s} [{source.n}]" for i, s in enumerate(sentences, start=1)]

    def _per_source(
        self,
        sources: Sequence[Source],
        candidates: list[_Candidate],
        similarity: np.ndarray,
        *,
        projects: bool,
    ) -> list[str]:
        """One line per source (per project document when `projects`): what it says closest
        to the question, two sentences at most."""
        lines: list[str] = []
        for source in sources:
            hit = source.best
            if projects and hit.doc_type not in PROJECT_TYPES:
                continue
            rows = [i for i, c in enumerate(candidates) if c.n == source.n]
            rows = [i for i in rows if similarity[i] >= self._options.min_similarity]
            if not rows:
                continue
            rows = sorted(rows, key=lambda i: -similarity[i])[:2]
            rows.sort(key=lambda i: (candidates[i].passage, candidates[i].position))
            said = " ".join(candidates[i].text.removeprefix("- ") for i in rows)
            label = _project_label(source) if projects else hit.title
            lines.append(f"- {label}: {said} [{source.n}]")
            if len(lines) == self._options.per_source:
                break
        return lines if len(lines) >= (1 if projects else 2) else []


def _best_of(n: int, candidates: list[_Candidate], similarity: np.ndarray) -> float:
    return max((float(similarity[i]) for i, c in enumerate(candidates) if c.n == n), default=0.0)


def _project_label(source: Source) -> str:
    hit = source.best
    facts = [f for f in (hit.department, hit.vendor, hit.outcome, hit.year) if f]
    name = hit.project or hit.title
    return f"{name} ({', '.join(str(f) for f in facts)})" if facts else name


def _unique(lines: Iterator[str] | list[str]) -> list[str]:
    return list(dict.fromkeys(lines))


def steps_of(text: str, words: int) -> list[str]:
    """The steps of a passage in order: its "Step N" headings, else its longest list."""
    found = step_lists(text, words)
    return max((found_list.steps for found_list in found), key=len, default=[])


@dataclass(frozen=True)
class StepList:
    lead: str  # the heading or lead-in line above the list
    steps: list[str]
    headed: bool  # "Step N" headings, not a run of list items


def step_lists(text: str, words: int, section: str = "") -> list[StepList]:
    """Every list of steps in a passage, each with what leads into it (the heading or
    lead-in line above it, else `section`): "Step N: title" headings with the sentences under
    each (`_step`, up to `words` words), and each run of two or more numbered or bulleted
    items. Headed steps come first, as one list."""
    found: list[StepList] = []
    headed: list[tuple[str, list[str]]] = []
    headed_lead = section
    lead = section
    run: list[str] = []
    open_step = False
    for line in text.splitlines():
        match = _STEP_HEADING.match(line)
        if match and len(line.split()) <= 14:
            if not headed:
                headed_lead = lead
            headed.append((_capital(match.group(2).strip()) or f"Step {match.group(1)}", []))
            open_step = True
            continue
        if LIST_MARKER.match(line) and len(line.split()) >= 3 and not open_step:
            run.append(_closed(LIST_MARKER.sub("", line).strip()))
            continue
        if len(run) >= 2:
            found.append(StepList(lead, run, headed=False))
        run = []
        if _heading_like(line):
            open_step = False  # the next section: its text is not the last step's
            lead = line.strip()
        elif open_step and line.strip():
            headed[-1][1].extend(split_line(LIST_MARKER.sub("", line)))
        elif line.rstrip().endswith((":", "?")):
            lead = line.strip().rstrip(":")  # "If the bot is wrong:", a FAQ's question
    if len(run) >= 2:
        found.append(StepList(lead, run, headed=False))
    if len(headed) >= 2:
        steps = [_step(title, body, words) for title, body in headed]
        found.insert(0, StepList(headed_lead, steps, headed=True))
    return found


def _heading_like(line: str) -> bool:
    """A short line that ends without punctuation and is no list item: a heading."""
    words = line.split()
    return (
        0 < len(words) <= 8
        and not LIST_MARKER.match(line)
        and not line.rstrip().endswith((".", "!", "?", ":", ";", ","))
    )


def _step(title: str, body: list[str], words: int) -> str:
    """A step's title and what is said under it, in the document's order, up to `words`
    words: its first sentence (what the step is), then the sentences that carry its details
    (a number, a threshold, a form or a tool's name), then the rest while the budget lasts."""
    chosen: set[int] = set()
    spent = 0
    for rank in (_opening, _detailed, _any):
        for i, sentence in enumerate(body):
            size = len(sentence.split())
            if i in chosen or not rank(i, sentence) or (chosen and spent + size > words):
                continue
            chosen.add(i)
            spent += size
    said = [_closed(body[i]) for i in sorted(chosen)]
    return f"{title}: {' '.join(said)}" if said else _closed(title)


_DETAIL = re.compile(
    r"\d|\b[A-Z][A-Za-z]*[A-Z0-9][A-Za-z0-9-]*\b|\b(?:[A-Z][a-z]+\s){1,3}[A-Z][a-z]+"
)


def _opening(i: int, sentence: str) -> bool:
    return i == 0


def _detailed(i: int, sentence: str) -> bool:
    """A number, a code ("AI-01", "KAIG") or a name of several capitalised words, past the
    sentence's first word."""
    first, _, rest = sentence.partition(" ")
    return bool(_DETAIL.search(rest)) or any(c.isdigit() for c in first)


def _any(i: int, sentence: str) -> bool:
    return True


def _cells(line: str) -> list[str] | None:
    """The cells of a table row ("a | b | c"), or None for a line that is not one."""
    if " | " not in line:
        return None
    cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
    return cells if len(cells) >= 2 and all(cells) else None


def _row(header: list[str], cells: list[str]) -> str:
    """A table row as a sentence: its first cell, then each other column's name and value."""
    named = [
        f"{name} {value}" if name else value
        for name, value in zip([*header[1:], *[""] * len(cells)], cells[1:], strict=False)
    ]
    return _closed(f"{cells[0]}: {'; '.join(named)}")


def _closed(sentence: str) -> str:
    sentence = sentence.strip().rstrip(";,")
    return sentence if sentence.endswith((".", "!", "?", ":")) else sentence + "."


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def quotable(text: str) -> list[str]:
    """Sentences of a passage worth quoting; list items keep a "- " marker, and a table row
    is read with its header ("Sales rep: Maximum discount without approval 7%.")."""
    out = []
    header: list[str] | None = None
    for line in text.splitlines():
        cells = _cells(line)
        if cells is None:
            header = None
        elif header is None:
            header = cells  # a table's first row names its columns
            continue
        else:
            out.append(_row(header, cells))
            continue
        item = bool(LIST_MARKER.match(line))
        for sentence in split_line(LIST_MARKER.sub("", line)):
            if len(sentence.split()) < (3 if item else 6):
                continue  # headings, labels and fragments
            if sentence.endswith(("?", ":")):
                continue  # a FAQ's question or a lead-in, not an answer
            sentence = _closed(sentence)
            out.append(f"- {sentence}" if item else sentence)
            item = False
    return out
