"""The supersession and conflict report (`kb conflicts`, `GET /v1/conflicts`), made on demand
from the registry, the chunks and the query log; nothing is cached.

1. Superseded documents that answers still cite (from the query log's citations), with the
   document that replaces them and the owner to fix it; and superseded documents whose
   successor is not in the base.
2. Pairs of current documents (neither superseded nor retired) that state different values
   for the same detail. Each chunk is split with the one sentence splitter; a sentence that
   states a value (assistant/values.py) is kept. All kept sentences are embedded in one batch
   with the product's embedder; a pair of sentences from two different documents (not a
   document and one it supersedes: that is supersession) is a conflict when
   - their cosine similarity is at least SIMILARITY,
   - their *detail* matches: the names and other numbers left once the values are masked
     (capitalised words, acronyms, ids such as "AI-01", "Tier 2") of the sentence with fewer of
     them all appear in the other, and there is at least one; and
   - for some dimension both state (a percentage, an amount in one currency, a duration, a
     quantity of one unit), their values have nothing in common. Dates are masked but do not
     make a conflict on their own: in the shipped corpus nearly every pair differing only by
     a date was two different events (an approval, a launch) of two projects.

Thresholds, measured on the shipped corpus (evals/bench_conflicts.py, labels in
evals/datasets/conflicts.jsonl): of the 3,692 cross-document pairs of value sentences at
similarity >= 0.5 whose values differ, the name check keeps 111 at 0.55, 66 at 0.60, 40 at 0.65
and 26 at 0.70; the known conflicts sit at 0.61-0.79 (the CoE FAQ's 5-working-day triage
against the intake process's 10 at 0.69; the KAIG FAQ's 90-day prompt retention against the
HR assistant FAQ's 30 days at 0.615). SIMILARITY = 0.60 keeps every one of them that the
sentence method can see, at the price of a report a person reads: 56 pairs, 6 of them on the
labelled conflicts (5 of the 6 labelled found), 50 false (the same kind of figure for two
projects, vendors or model versions); 0.65 loses the retention conflict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from assistant.kb_health import utc_today
from assistant.querylog import QueryLog
from assistant.review import RECENT_DAYS, readable
from assistant.values import Value, details, differing, extract, masked, same_detail
from index.embedding import Embedder
from index.filters import Principal
from index.records import DocumentRecord, Status
from index.sentences import split_sentences
from index.store import ChromaStore

SIMILARITY = 0.60  # see the module docstring for the measurement that chose it
DEFAULT_DAYS = RECENT_DAYS  # "still cited": answers of the last quarter, as the review queue
_INACTIVE = {Status.SUPERSEDED, Status.RETIRED}


@dataclass(frozen=True)
class Passage:
    doc_id: str
    title: str
    section: str
    sentence: str
    values: list[str]  # the values as written, in order


@dataclass(frozen=True)
class Conflict:
    similarity: float
    detail: str  # the first sentence with its values masked
    a: Passage
    b: Passage


@dataclass(frozen=True)
class SupersededUse:
    doc_id: str
    title: str
    owner: str  # who keeps the superseded document: retire it, or point readers on
    cited_recently: int  # answers that cited it in the last `days`
    cited: int  # since the log began
    superseded_by: list[str]  # current documents that replace it (readable by the caller)
    successor_owner: str | None = None


@dataclass(frozen=True)
class ConflictReport:
    days: int
    similarity: float
    cited_superseded: list[SupersededUse] = field(default_factory=list)
    missing_successor: list[SupersededUse] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)


@dataclass(frozen=True)
class Statement:
    """A sentence of a current document that states a value."""

    doc_id: str
    section: str
    sentence: str
    values: list[Value]

    def names(self) -> set[str]:
        """Names and numbers of the sentence besides its values: what it is about."""
        return details(self.sentence, self.values)


def successors(records: Iterable[DocumentRecord]) -> dict[str, list[DocumentRecord]]:
    """For each superseded document id, the active documents that name it in `supersedes`."""
    out: dict[str, list[DocumentRecord]] = {}
    for record in records:
        if record.meta.status not in _INACTIVE:
            for old in record.meta.supersedes:
                out.setdefault(old, []).append(record)
    return out


def supersession(
    records: list[DocumentRecord], log: QueryLog, since: dt.date, days: int
) -> tuple[list[SupersededUse], list[SupersededUse]]:
    """(superseded documents cited since `since`, most cited first; superseded documents no
    document of `records` replaces). A document is superseded when its status says so or a
    current document supersedes it."""
    later = successors(records)
    old = [r for r in records if r.meta.status is Status.SUPERSEDED or r.doc_id in later]
    ids = [r.doc_id for r in old]
    recent, ever = log.document_use(ids, since=since), log.document_use(ids)
    uses = []
    for record in old:
        by = later.get(record.doc_id, [])
        uses.append(
            SupersededUse(
                doc_id=record.doc_id,
                title=record.meta.title,
                owner=record.meta.owner,
                cited_recently=recent[record.doc_id].cited,
                cited=ever[record.doc_id].cited,
                superseded_by=[r.doc_id for r in by],
                successor_owner=by[0].meta.owner if by else None,
            )
        )
    cited = sorted(
        (u for u in uses if u.cited_recently), key=lambda u: (-u.cited_recently, u.doc_id)
    )
    return cited, [u for u in uses if not u.superseded_by]


def statements(records: list[DocumentRecord], store: ChromaStore) -> list[Statement]:
    """The value-stating sentences of the current documents among `records`, each once per
    document (chunks overlap), in document order."""
    current = {r.doc_id for r in records if r.meta.status not in _INACTIVE}
    found: list[Statement] = []
    seen: set[tuple[str, str]] = set()
    for doc_id in sorted(current):
        for _, text, metadata in store.document_chunks(doc_id):
            for sentence in split_sentences(text):
                values = extract(sentence)
                if values and (doc_id, sentence) not in seen:
                    seen.add((doc_id, sentence))
                    found.append(
                        Statement(doc_id, str(metadata.get("section", "")), sentence, values)
                    )
    return found


def find_conflicts(
    found: list[Statement],
    embedder: Embedder,
    related: set[frozenset[str]],
    similarity: float = SIMILARITY,
) -> list[tuple[float, Statement, Statement]]:
    """(similarity, a, b) of pairs of statements of different documents, not `related` (a
    document and one it supersedes), that state different values for the same detail; most
    similar first."""
    if len(found) < 2:
        return []
    vectors = embedder.embed([s.sentence for s in found])
    scores = vectors @ vectors.T
    names = [s.names() for s in found]
    pairs = []
    for i, j in zip(*np.nonzero(np.triu(scores >= similarity, k=1)), strict=True):
        a, b = found[int(i)], found[int(j)]
        if a.doc_id == b.doc_id or frozenset((a.doc_id, b.doc_id)) in related:
            continue
        if same_detail(names[int(i)], names[int(j)]) and differing(a.values, b.values):
            pairs.append((float(scores[i, j]), a, b))
    return sorted(pairs, key=lambda p: (-p[0], p[1].doc_id, p[2].doc_id))


class ConflictFinder:
    """The report, over the documents a principal may read."""

    def __init__(
        self,
        store: ChromaStore,
        query_log: QueryLog,
        embedder: Embedder,
        *,
        similarity: float = SIMILARITY,
        log_today: Callable[[], dt.date] = utc_today,
    ) -> None:
        self._store = store
        self._log = query_log
        self._embedder = embedder
        self.similarity = similarity
        self._log_today = log_today

    def report(self, principal: Principal, days: int = DEFAULT_DAYS) -> ConflictReport:
        records = readable(self._store.documents(), principal)
        since = self._log_today() - dt.timedelta(days=days)
        cited, missing = supersession(records, self._log, since, days)
        related = {frozenset((r.doc_id, old)) for r in records for old in r.meta.supersedes}
        titles = {r.doc_id: r.meta.title for r in records}

        def passage(s: Statement) -> Passage:
            return Passage(
                s.doc_id, titles[s.doc_id], s.section, s.sentence, [v.text for v in s.values]
            )

        pairs = find_conflicts(
            statements(records, self._store), self._embedder, related, self.similarity
        )
        conflicts = [
            Conflict(round(score, 3), masked(a.sentence, a.values), passage(a), passage(b))
            for score, a, b in pairs
        ]
        return ConflictReport(days, self.similarity, cited, missing, conflicts)
