"""The assistant: retrieve, refuse early when nothing relevant is found, generate, check
citations, warn about stale sources. Streams the sources found (before generation starts),
then tokens, then one final event with the checked answer. (Whoever serves the answer records
it in the query log: assistant/querylog.py.)"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from assistant import followup
from assistant.answerability import AnswerJudge
from assistant.citations import CheckedAnswer, CheckOptions, check_citations, split_cited
from assistant.context import ContextOptions, assemble
from assistant.disagreements import Disagreement, DisagreementOptions, disagreements
from assistant.generators import Generator
from assistant.prompt import REFUSAL_SENTENCE, Turn
from assistant.question import canonical, phrased
from assistant.shapes import (
    PROJECT_TYPES,
    Shape,
    asks_about_projects,
    asks_to_compare,
    question_shape,
)
from assistant.sources import Source
from assistant.subqueries import ordered, parts
from index.embedding import Embedder
from index.filters import Principal, SearchFilters
from index.hits import Hit
from index.hybrid import HybridRetriever

# The model's verdict that the sources hold no answer: "I don't know ...", or a statement
# about the sources themselves ("is not mentioned in the sources"). A statement about the
# subject ("treatments are not covered in the Standard plan") is an answer, not a refusal.
_DONT_KNOW = re.compile(
    r"\b(?:i don'?t know|i do not know|"
    r"not (?:contained|covered|mentioned|found|given|provided|stated|specified) in "
    r"(?:the |any of the |these )?(?:provided |given |available |numbered )?"
    r"(?:sources?|documents?|knowledge base|context|excerpts?))\b",
    re.I,
)
_DONT_KNOW_SENTENCE = re.compile(
    r"[^.!?\n]*" + _DONT_KNOW.pattern + r"[^.!?\n]*[.!?]?(?:\s*\[[\d,\s]+\])*", re.I
)


@dataclass(frozen=True)
class AssistantOptions:
    k: int = 10  # chunks retrieved; context assembly makes them `context.documents` sources
    neighbors: int = 0
    refusal_threshold: float = 0.40  # top dense similarity under which nothing is relevant
    # Weaker matches worth naming in a refusal (dense similarity). Off-topic questions score
    # up to 0.21 on contoso_hr, the weakest on-topic unanswerable ones 0.26 (golden) and 0.34:
    # evals/README.md, "Constants and the measurements behind them".
    nearby_threshold: float = 0.25
    # Comparisons are also searched part by part, questions about earlier work among the
    # project documents (assistant/subqueries.py); part_k chunks per part.
    subqueries: bool = True
    part_k: int = 5
    # A follow-up is carried with the question it goes on from and also searched, in its own
    # words, among the best `topic_documents` documents of that question (0: not searched so).
    # With `rewrite_follow_ups` the generator is first asked to rewrite it to stand alone: on
    # the follow-up set that found the same sources, and the local model took 2 s for the
    # rewrite and about 10 s more for the answer (evals/README.md, "Follow-up questions").
    rewrite_follow_ups: bool = False
    topic_documents: int = 2
    check: CheckOptions = field(default_factory=CheckOptions)
    context: ContextOptions = field(default_factory=ContextOptions)
    # Current sources that state different values for what the answer says are named in a
    # note and a warning (assistant/disagreements.py); None: not looked for.
    disagreements: DisagreementOptions | None = field(default_factory=DisagreementOptions)


@dataclass(frozen=True)
class Citation:
    n: int
    doc_id: str
    title: str
    path: str
    page: int | None
    section: str
    stale: bool
    support: float
    owner: str
    review_date: str | None
    link: str
    pages: list[int] = field(default_factory=list)  # every page a cited sentence came from


@dataclass
class Answer:
    question: str
    standalone_question: str
    answer: str
    refused: bool
    citations: list[Citation]
    warnings: list[str]
    unsupported: list[str] = field(default_factory=list)
    nearby: list[dict[str, str]] = field(default_factory=list)
    refusal_reason: str | None = None
    generator: str = ""
    answerability: float | None = None  # the judge's P(yes), when answers are judged
    timings_ms: dict[str, float] = field(default_factory=dict)
    # The best dense similarity of the retrieved sources: what the refusal gate compares with
    # its threshold (the query log keeps it, and the gap report reads weak answers from it).
    relevance: float | None = None
    answer_id: str = field(default_factory=lambda: uuid.uuid4().hex)  # for feedback
    # Current sources that disagree on what the answer states (assistant/disagreements.py).
    disagreements: list[Disagreement] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Context:
    """What an answer is grounded on (Assistant.prepare)."""

    standalone: str  # the question, rewritten to stand alone when it follows up
    hits: list[Hit]  # retrieved chunks, best first
    sources: list[Source]  # the numbered sources the generator reads
    top: float  # relevance of the best hit (the refusal gate reads it)


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Found:
    """The numbered sources an answer will be grounded on, sent before the first token (as
    citations with no support measured yet), so a reader sees them at once."""

    sources: list[Citation]


@dataclass(frozen=True)
class Final:
    answer: Answer


Event = Found | Token | Final


def source_link(hit: Hit) -> str:
    link = f"/v1/documents/{hit.doc_id}/source"
    return f"{link}#page={hit.page}" if hit.page else link


class Assistant:
    def __init__(
        self,
        retriever: HybridRetriever,
        generator: Generator,
        embedder: Embedder,
        *,
        today: Callable[[], dt.date],
        options: AssistantOptions | None = None,
        judge: AnswerJudge | None = None,
    ) -> None:
        self._retriever = retriever
        self._generator = generator
        self._embedder = embedder
        self._judge = judge  # reads each finished answer; refuses one that does not answer
        self._today = today
        self.options = options or AssistantOptions()

    @property
    def generator_name(self) -> str:
        return self._generator.name

    def ask(
        self,
        question: str,
        *,
        principal: Principal,
        history: Sequence[Turn] = (),
        filters: SearchFilters | None = None,
    ) -> Answer:
        for event in self.stream(question, principal=principal, history=history, filters=filters):
            if isinstance(event, Final):
                return event.answer
        raise AssertionError("stream ended without a final event")  # pragma: no cover

    def stream(
        self,
        question: str,
        *,
        principal: Principal,
        history: Sequence[Turn] = (),
        filters: SearchFilters | None = None,
    ) -> Iterator[Event]:
        started = time.perf_counter()
        context = self.prepare(question, principal=principal, history=history, filters=filters)
        standalone, hits, top = context.standalone, context.hits, context.top
        timings = {"retrieve": _ms(started)}
        base = Answer(question, standalone, "", False, [], [], generator=self._generator.name)
        base.relevance = round(top, 4)
        if top < self.options.refusal_threshold:
            timings["total"] = _ms(started)
            yield Final(self._refuse(base, hits, "no relevant source", top, timings))
            return
        sources = context.sources
        yield Found([_citation(s, 0.0, None, set()) for s in sources])
        parts: list[str] = []
        asked = phrased(standalone, [t for s in sources for t in (s.heading(), s.text)])
        held = self._judge is not None  # a judged answer is shown only once it passes
        for delta in self._generator.stream(asked, sources):
            if not parts and not held:
                timings["first_token"] = _ms(started)
            parts.append(delta)
            if not held:
                yield Token(delta)
        text = _without_dont_know("".join(parts))
        timings["generate"] = round(_ms(started) - timings["retrieve"], 1)
        if not text:
            timings["total"] = _ms(started)
            reason = "the model found no answer"
            yield Final(self._refuse(base, hits, reason, top, timings))
            return
        checked = check_citations(text, sources, self._embedder, self.options.check)
        timings["total"] = _ms(started)
        if not any(s.sources for s in checked.sentences):
            reason = "no statement was supported by a source"
            answer = self._refuse(base, hits, reason, top, timings)
            answer.unsupported = [s.text for s in checked.dropped]
            yield Final(answer)
            return
        if self._judge is not None:
            said = "\n".join(s.text for s in checked.sentences if s.sources)
            judging = time.perf_counter()
            passes, base.answerability = self._judge.answers(standalone, said)
            timings["judge"] = _ms(judging)
            timings["total"] = _ms(started)
            if not passes:
                reason = "the sources do not state what was asked"
                yield Final(self._refuse(base, hits, reason, top, timings))
                return
            timings["first_token"] = timings["total"]
            yield from (Token(part) for part in parts)
        yield Final(self._compose(base, checked, sources, timings, standalone))

    def prepare(
        self,
        question: str,
        *,
        principal: Principal,
        history: Sequence[Turn] = (),
        filters: SearchFilters | None = None,
    ) -> Context:
        """What an answer is grounded on, before any generation: the standalone question,
        the retrieved chunks and the numbered sources the generator reads."""
        previous = _asked(history)
        follows = bool(previous) and followup.is_follow_up(question)
        rewrite = self._rewriter(history, question)
        standalone = followup.carried(question, previous, rewrite) if follows else question
        query = canonical(standalone)  # however it was typed
        today = self._today()

        def search(text: str, k: int, within: SearchFilters | None = filters) -> list[Hit]:
            return self._retriever.retrieve(
                text,
                k,
                today=today,
                filters=within,
                principal=principal,
                neighbors=self.options.neighbors,
            )

        main = search(query, self.options.k)
        hits = self._with_searches_beside(query, main, search, filters)
        if follows:
            hits = ordered(self._search_in_topic(question, previous, search, filters), [hits])
        radius = self.options.context.radius
        shape = question_shape(query, [h.doc_type for h in hits])
        # A follow-up that does not ask for steps reads the step it is about, not the whole
        # procedure; any other question keeps procedures whole, since reading single steps
        # lost key facts of the golden subset's extractive answers (evals/README.md,
        # "Context assembly").
        sources = assemble(
            hits,
            lambda ranked: self._retriever.surroundings(ranked, radius, today),
            self.options.context,
            procedure=shape is Shape.PROCEDURE,
            whole_steps=not follows,
        )
        # The refusal gate reads the whole question's search: a part of it ("Deal Notes")
        # matches the base better than a question the base cannot answer.
        return Context(standalone, hits, sources, self._relevance(query, main))

    def _with_searches_beside(
        self,
        query: str,
        main: list[Hit],
        search: Callable[..., list[Hit]],
        filters: SearchFilters | None,
    ) -> list[Hit]:
        """The main search's hits with those of a comparison's parts and, for a question
        about earlier work, of the projects (assistant/subqueries.py)."""
        if not self.options.subqueries:
            return main
        compared: list[list[Hit]] = []
        if asks_to_compare(query):
            compared = [search(part, self.options.part_k) for part in parts(query)]
        among_projects: list[list[Hit]] = []
        projects = _project_filters(filters) if asks_about_projects(query) else None
        if projects is not None:
            among_projects = [search(query, self.options.k, projects)]
        # The projects' best document leads only when no document read is a project: a
        # pilot written up as a playbook that the main search found keeps its place.
        read = list(dict.fromkeys(h.doc_id for h in main))[: self.options.context.documents]
        if not any(h.doc_type in PROJECT_TYPES for h in main if h.doc_id in read):
            compared, among_projects = compared + among_projects, []
        return ordered(main, compared, among_projects)

    def _search_in_topic(
        self,
        question: str,
        previous: Sequence[str],
        search: Callable[..., list[Hit]],
        filters: SearchFilters | None,
    ) -> list[Hit]:
        """For a follow-up, its own words searched among the documents the conversation is
        about (the best `topic_documents` of what it goes on from), so "how long's the
        trial?" after "how do we deploy document processing?" reads the deployment
        playbook's shadow-mode step rather than whatever the two questions' words together
        find. `previous`: the user's earlier questions, oldest first."""
        if not self.options.topic_documents:
            return []
        found = search(canonical(followup.went_on_from(previous)), self.options.k)
        documents = list(dict.fromkeys(h.doc_id for h in found))[: self.options.topic_documents]
        if not documents:
            return []
        within = replace(filters or SearchFilters(), doc_ids=tuple(documents))
        return search(canonical(question), self.options.part_k, within)

    def _relevance(self, question: str, hits: Sequence[Hit]) -> float:
        """The best dense similarity between the question and a retrieved chunk: what the
        refusal threshold is calibrated on. Retrieval reports it for the chunks the dense
        path saw; when it saw none (keyword mode), the chunks are embedded here."""
        dense = [h.dense_score for h in hits if h.dense_score is not None]
        if dense or not hits:
            return max(dense, default=0.0)
        vectors = self._embedder.embed([question, *(h.text for h in hits)])
        return float(np.max(vectors[1:] @ vectors[0]))

    def standalone(self, question: str, history: Sequence[Turn]) -> str:
        """The question made to stand alone when it follows up on the conversation
        (assistant/followup.py): rewritten by the generator when `rewrite_follow_ups` is on
        and the rewrite passes, else carried with the question it goes on from."""
        return followup.standalone(question, _asked(history), self._rewriter(history, question))

    def _rewriter(self, history: Sequence[Turn], question: str) -> Callable[[], str | None]:
        def rewrite() -> str | None:
            if not self.options.rewrite_follow_ups:
                return None
            return self._generator.rewrite(history, question)

        return rewrite

    def _compose(
        self,
        base: Answer,
        checked: CheckedAnswer,
        sources: list[Source],
        timings: dict[str, float],
        question: str = "",
    ) -> Answer:
        by_n = {s.n: s for s in sources}
        lines: list[str] = []
        previous: int | None = None
        for sentence in checked.sentences:
            marks = "".join(f"[{n}]" for n in sentence.sources)
            said = f"{sentence.text} {marks}".strip()
            if lines and sentence.line == previous:
                lines[-1] += f" {said}"  # sentences of one paragraph or list item stay together
            else:
                lines.append(said)
            previous = sentence.line
        support = dict.fromkeys(checked.cited(), 0.0)
        for sentence in checked.sentences:
            for n in sentence.sources:
                support[n] = max(support[n], sentence.support)
        where: dict[int, tuple[float, Hit | None]] = {}  # the best-supported sentence's chunk
        pages: dict[int, set[int]] = {}
        for sentence in checked.sentences:
            for n, chunk in sentence.chunks.items():
                if n not in where or sentence.support > where[n][0]:
                    where[n] = (sentence.support, chunk)
                if chunk is not None and chunk.page is not None:
                    pages.setdefault(n, set()).add(chunk.page)
        found = self._disagreements(question, checked, sources)
        # A source the note names is cited too, so that every [n] of the answer has its
        # citation; the note quotes the value from its sentence as written, so it supports the
        # note fully.
        named = [n for d in found for n in (d.first, d.second) if n not in support]
        citations = [
            _citation(
                by_n[n], support.get(n, 1.0), where.get(n, (0.0, None))[1], pages.get(n, set())
            )
            for n in [*checked.cited(), *dict.fromkeys(named)]
        ]
        warnings = [
            f"[{c.n}] " + _stale_warning(c.title, c.review_date, c.owner)
            for c in citations
            if c.stale
        ]
        warnings += [_disagreement_warning(d, by_n) for d in found]
        answer = "\n".join(lines + [d.note() for d in found])
        if any(c.stale for c in citations):
            stale = ", ".join(f"[{c.n}]" for c in citations if c.stale)
            answer += f"\n\nWarning: {stale} past review date; the content may be out of date."
        base.answer = answer
        base.citations = citations
        base.warnings = warnings
        base.unsupported = [s.text for s in checked.dropped]
        base.disagreements = found
        base.timings_ms = timings
        return base

    def _disagreements(
        self, question: str, checked: CheckedAnswer, sources: list[Source]
    ) -> list[Disagreement]:
        if not question or self.options.disagreements is None:
            return []
        said = [s.text for s in checked.sentences if s.sources]
        return disagreements(question, said, sources, self._embedder, self.options.disagreements)

    def _refuse(
        self,
        base: Answer,
        hits: list[Hit],
        reason: str,
        top: float,
        timings: dict[str, float],
    ) -> Answer:
        nearby: list[dict[str, str]] = []
        pointed: list[Hit] = []
        for hit in hits:
            if (hit.dense_score or 0.0) >= self.options.nearby_threshold and hit.doc_id not in {
                n["doc_id"] for n in nearby
            }:
                nearby.append({"doc_id": hit.doc_id, "title": hit.title})
                pointed.append(hit)
        text = REFUSAL_SENTENCE
        if nearby:
            titles = "; ".join(f'"{n["title"]}"' for n in nearby[:3])
            text += f" Related documents that may help: {titles}."
        # A document the refusal points to is still one the asker may go and read: say when
        # it is past its review date, as a cited one would.
        base.warnings = [
            _stale_warning(hit.title, hit.review_date, hit.owner)
            for hit in pointed[:3]
            if hit.is_stale
        ]
        base.answer = text
        base.refused = True
        base.refusal_reason = reason
        base.nearby = nearby[:3]
        base.timings_ms = timings
        return base


def _stale_warning(title: str, review_date: object, owner: str) -> str:
    return (
        f'"{title}" is past its review date ({review_date}); owner: {owner}. '
        "Check with them before relying on it."
    )


def _asked(history: Sequence[Turn]) -> list[str]:
    """The user's earlier questions, oldest first."""
    return [t.content for t in history if t.role == "user"]


def _project_filters(filters: SearchFilters | None) -> SearchFilters | None:
    """`filters` narrowed to the project document types; None when they allow none."""
    base = filters or SearchFilters()
    types = tuple(t for t in base.doc_types or sorted(PROJECT_TYPES) if t in PROJECT_TYPES)
    return replace(base, doc_types=types) if types else None


def _citation(source: Source, support: float, chunk: Hit | None, pages: set[int]) -> Citation:
    """Source `source` as cited: the section, page and link of `chunk` (the chunk holding the
    sentence that supports the answer best), of the best-ranked chunk when none is known."""
    hit = chunk or source.best
    return Citation(
        n=source.n,
        doc_id=hit.doc_id,
        title=hit.title,
        path=hit.path,
        page=hit.page,
        section=hit.section,
        stale=hit.is_stale,
        support=round(support, 3),
        owner=hit.owner,
        review_date=hit.review_date,
        link=source_link(hit),
        pages=sorted(pages),
    )


def _disagreement_warning(found: Disagreement, by_n: dict[int, Source]) -> str:
    first, second = by_n[found.first].best, by_n[found.second].best
    return (
        f'[{found.first}] "{first.title}" says {found.first_value} and [{found.second}] '
        f'"{second.title}" says {found.second_value} about this; ask their owners '
        f"({first.owner}; {second.owner}) which is right."
    )


def says_dont_know(text: str) -> bool:
    """Whether a generated answer is the verdict that the sources hold no answer (it opens
    with "I don't know ...", or is empty): how the assistant tells a model's refusal, and how
    evals/systems.py tells another system's."""
    return not _without_dont_know(text)


def _without_dont_know(text: str) -> str:
    """The answer without its "I don't know" sentences, or "" when it opens with one (the
    model's verdict). A model sometimes answers and then adds that it does not know (the rest
    of the question, or out of habit): what it did write is still checked."""
    sentences = split_cited(text)
    if not sentences or _DONT_KNOW.search(sentences[0][0]):
        return ""
    return _DONT_KNOW_SENTENCE.sub("", text).strip()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
