"""Knowledge gaps as a backlog (`kb gaps --clusters`, `GET /v1/gaps?clusters=true`): the
questions the base could not answer, and those it answered on weak evidence, grouped by topic.

What counts: every refusal, and every answer whose best source was only just relevant enough
to pass the refusal gate (its relevance, which the query log keeps, under the gate's threshold
plus `LOW_CONFIDENCE_MARGIN`). Answers logged before the log kept relevance count only when
refused.

How they are grouped: the distinct questions (case and spacing aside) are embedded with the
product's embedding model and clustered agglomeratively, average linkage on cosine distance,
merging while the closest two clusters are within `DISTANCE_THRESHOLD`. Ties break on the
questions' order (alphabetical), so the same log gives the same clusters.

Each cluster is split by the department of whoever asked: the first of the asker's groups that
names a department of the organisation (`KB_DEPARTMENTS`); administrators, the CLI and keys
without such a group count as `unassigned`. Its nearest documents are found by searching the
store with the cluster's mean question within the caller's access, so a document the caller
may not read is never named.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from assistant.querylog import Gap, GapQuestion, QueryLog, normalise_question
from assistant.review import readable, visible_gaps
from index.embedding import Embedder
from index.filters import Principal, SearchFilters, Where, build_where, matches
from index.store import ChromaStore

# Average-linkage cut on cosine distance (1 - cosine similarity of MiniLM vectors), chosen by
# evals/calibrate_gap_clusters.py: questions whose best expected document is the same stand for
# one topic, and clusters are scored against them by pair-counting F1 over the grid 0.30..0.80.
# The F1 peaks at 0.60 both on the 43 golden questions with a single expected document (0.545;
# 0.533 at 0.55, 0.543 at 0.65; precision 0.889 at 0.55, 0.750 at 0.60, 0.564 at 0.65) and on
# the 132 answerable golden and employee questions (0.317; 0.296 at 0.55, 0.285 at 0.65).
DISTANCE_THRESHOLD = 0.60
# An answer counts as low confidence when its best source scored under the refusal threshold
# plus this: one step of the grid the threshold is calibrated on (evals/calibrate_refusal.py).
# At 0.40 + 0.05 the gate would start refusing answerable golden questions (0.983 kept), so
# answers in that band stand on evidence the calibration calls borderline.
LOW_CONFIDENCE_MARGIN = 0.05
# The latest this many refused or low-confidence answers are clustered: clustering is
# quadratic in memory and about cubic in time in the distinct questions (~1 s at 1,000).
MAX_ANSWERS = 1000
UNASSIGNED = "unassigned"  # asked by an administrator, the CLI, or a key of no department
EXAMPLES = 3
NEAREST_DOCUMENTS = 3
_NEAREST_CHUNKS = 30  # chunks read to find the nearest documents (several per document)


@dataclass(frozen=True)
class GapClusterOptions:
    refusal_threshold: float  # KB_REFUSAL_THRESHOLD: what the gate refuses under
    departments: frozenset[str]  # KB_DEPARTMENTS: the groups that name a department
    distance_threshold: float = DISTANCE_THRESHOLD
    low_confidence_margin: float = LOW_CONFIDENCE_MARGIN
    max_answers: int = MAX_ANSWERS


@dataclass(frozen=True)
class DepartmentCount:
    department: str
    questions: int


@dataclass(frozen=True)
class NearDocument:
    doc_id: str
    title: str
    similarity: float  # cosine similarity of its closest chunk to the cluster's mean question


@dataclass(frozen=True)
class GapCluster:
    label: str  # the most central question: the highest mean similarity to the others
    questions: int  # times asked, repeats included
    distinct_questions: int
    askers: int  # distinct askers (API key ids; `cli` for the command line)
    refused: int
    low_confidence: int  # answered, but on a source barely above the refusal threshold
    departments: list[DepartmentCount]  # by count, then name
    examples: list[str]  # up to 3 distinct questions, most asked first
    nearest: list[NearDocument]  # up to 3, only documents the caller may read
    first_asked: str
    last_asked: str


@dataclass(frozen=True)
class GapClusterReport:
    clusters: list[GapCluster]  # most asked first
    answers: int  # refused and low-confidence answers clustered
    truncated: bool  # more were logged in the window: only the latest `answers` were read
    since: str | None  # the first day read (UTC), None for the whole log
    distance_threshold: float
    low_confidence_below: float  # relevance under which an answer counts as low confidence


@dataclass
class _Question:
    """One distinct question and the answers it got."""

    text: str  # as last asked
    asked: list[GapQuestion] = field(default_factory=list)


class GapClusters:
    def __init__(
        self,
        query_log: QueryLog,
        store: ChromaStore,
        embedder: Embedder,
        today: Callable[[], dt.date],
        options: GapClusterOptions,
    ) -> None:
        self._log = query_log
        self._store = store
        self._embedder = embedder
        self._today = today
        self.options = options

    def gaps(self, principal: Principal, limit: int = 50) -> list[Gap]:
        """The refused questions, most asked first (`QueryLog.gaps`), naming only nearby
        documents `principal` may read."""
        return visible_gaps(self._log.gaps(limit), self._store.documents(), principal)

    def report(
        self, principal: Principal, limit: int = 50, since: dt.date | None = None
    ) -> GapClusterReport:
        """The `limit` largest clusters of refused and low-confidence questions asked on or
        after `since` (all when None), naming only documents `principal` may read."""
        weak_below = round(self.options.refusal_threshold + self.options.low_confidence_margin, 4)
        found = self._log.gap_questions(weak_below, since, self.options.max_answers + 1)
        truncated = len(found) > self.options.max_answers
        found = found[-self.options.max_answers :]
        if not principal.admin:  # an answer drawn from a document the caller may not read
            allowed = {r.doc_id for r in readable(self._store.documents(), principal)}
            found = [q for q in found if allowed.issuperset(q.cited)]
        questions = _distinct(found)
        vectors = self._embedder.embed([q.text for q in questions]) if questions else None
        clusters = []
        if vectors is not None:
            groups = agglomerate(vectors, self.options.distance_threshold)
            built = [self._cluster([questions[i] for i in g], vectors[g]) for g in groups]
            built.sort(key=lambda b: b[0].label)  # stable sorts: most asked, then latest first
            built.sort(key=lambda b: b[0].last_asked, reverse=True)
            built.sort(key=lambda b: b[0].questions, reverse=True)
            where = build_where(SearchFilters(), principal, self._today())
            for cluster, centroid in built[:limit]:
                clusters.append(replace(cluster, nearest=self._nearest(centroid, where)))
        return GapClusterReport(
            clusters=clusters,
            answers=len(found),
            truncated=truncated,
            since=since.isoformat() if since else None,
            distance_threshold=self.options.distance_threshold,
            low_confidence_below=weak_below,
        )

    def _cluster(
        self, members: list[_Question], vectors: np.ndarray
    ) -> tuple[GapCluster, np.ndarray]:
        sims = vectors @ vectors.T
        centrality = sims.mean(axis=1)
        central = int(np.argmax(centrality))
        asked = [a for q in members for a in q.asked]
        times = [a.at for a in asked]
        order = sorted(range(len(members)), key=lambda i: (-len(members[i].asked), -centrality[i]))
        departments: dict[str, int] = {}
        for answer in asked:
            name = self._department(answer.groups)
            departments[name] = departments.get(name, 0) + 1
        cluster = GapCluster(
            label=members[central].text,
            questions=len(asked),
            distinct_questions=len(members),
            askers=len({a.asker for a in asked}),
            refused=sum(a.refused for a in asked),
            low_confidence=sum(not a.refused for a in asked),
            departments=[
                DepartmentCount(d, n)
                for d, n in sorted(departments.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
            examples=[members[i].text for i in order[:EXAMPLES]],
            nearest=[],
            first_asked=min(times),
            last_asked=max(times),
        )
        mean = vectors.mean(axis=0)
        return cluster, mean / (np.linalg.norm(mean) or 1.0)

    def _department(self, groups: Sequence[str]) -> str:
        return next((g for g in groups if g in self.options.departments), UNASSIGNED)

    def _nearest(self, centroid: np.ndarray, where: Where | None) -> list[NearDocument]:
        best: dict[str, NearDocument] = {}
        for _, _, md, similarity in self._store.query(centroid, _NEAREST_CHUNKS, where):
            if not matches(where, md):  # defence in depth: never name what is not allowed
                continue
            doc_id = str(md["doc_id"])
            if doc_id not in best:  # rows come best first
                best[doc_id] = NearDocument(doc_id, str(md.get("title", "")), round(similarity, 3))
        return list(best.values())[:NEAREST_DOCUMENTS]


def agglomerate(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Average-linkage agglomerative clustering of unit vectors on cosine distance: merge the
    two closest clusters (the mean distance between their members) while that distance is at
    most `threshold`. Returns the clusters as sorted member indices, ordered by their first
    member. Deterministic: among equally close pairs the first in row order merges."""
    n = len(vectors)
    distance = (1.0 - vectors @ vectors.T).astype(np.float64)
    np.fill_diagonal(distance, np.inf)
    sizes = np.ones(n)
    members = [[i] for i in range(n)]
    while n > 1:
        i, j = divmod(int(np.argmin(distance)), n)
        if distance[i, j] > threshold:
            break
        i, j = min(i, j), max(i, j)
        # Lance-Williams update for average linkage: the size-weighted mean of both rows
        merged = (sizes[i] * distance[i] + sizes[j] * distance[j]) / (sizes[i] + sizes[j])
        distance[i, :] = merged
        distance[:, i] = merged
        distance[i, i] = np.inf
        distance[j, :] = np.inf
        distance[:, j] = np.inf
        sizes[i] += sizes[j]
        members[i] += members[j]
        members[j] = []
    return [sorted(m) for m in members if m]


def _distinct(found: list[GapQuestion]) -> list[_Question]:
    """The distinct questions, in alphabetical order of their normalised form (so the order,
    and with it the clustering, depends only on what was asked)."""
    by_key: dict[str, _Question] = {}
    for answer in found:  # oldest first: the text kept is the latest wording
        entry = by_key.setdefault(normalise_question(answer.question), _Question(answer.question))
        entry.text = answer.question
        entry.asked.append(answer)
    return [by_key[key] for key in sorted(by_key)]
