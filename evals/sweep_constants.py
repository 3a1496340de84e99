"""The measurements behind the retrieval and answering constants (issue 16, item 11), on the
golden set over corpus/ (`python -m evals.sweep_constants`).

corpus/ is copied and ingested once (`--data-dir` keeps the store to reuse: unchanged documents
are not re-ingested); retrievers and the assistant are built as api/assembly.py builds them,
with one constant changed at a time, and every question is asked as its asker
(`principal_groups`). `--contoso` adds contoso_hr (its 131 questions and 30 unanswerable ones,
asked by an administrator) to the rrf, duplicates and nearby sweeps.

- rrf: `RetrievalOptions.rrf_k` over RRF_GRID: hit@k and MRR@10 of hybrid retrieval (top 10)
  on the answerable questions (golden: document-level; contoso_hr: a chunk of the reference
  file at page N-1..N+1), and the questions whose first hit ranks higher or lower than at the
  default.
- duplicates: `RetrievalOptions.duplicate_similarity` over DUPLICATE_GRID: the chunks collapsed
  into a better-ranked near-duplicate before the 10th hit (of the same document or another),
  hit@5 and distinct documents in the top 10; beside them, the closest pair of chunks in each
  uncollapsed top 10 and the near-duplicate chunk pairs of the whole store.
- citations: `CheckOptions` on claim-source pairs labelled by key facts
  (evals/citation_pairs.py) from the answerable questions with key facts and the sources
  `Assistant.prepare()` gives them. Support is what `check_citations` computes, per lexical
  weight of LEXICAL_GRID (a threshold of 0 keeps every sentence, so its support is read);
  each threshold's rates follow. The tie margin: the source credited for each claim written
  without a marker, against all the sources, at each margin of TIE_GRID.
- nearby: `AssistantOptions.nearby_threshold`: the best dense score of answerable and
  unanswerable questions, and the documents a refusal names at each of NEARBY_GRID (each
  question refused by the product itself, under a refusal threshold no score reaches).

Where a value is a choice (rrf_k, duplicate_similarity, the citation threshold with the lexical
weight), it is chosen on the golden set's calibration part and reported on its report part
(evals/golden.py `split_parts`); the rest is over the whole set. Results go to
data/bench/constants.json; what they decided is in evals/README.md, "Constants and the
measurements behind them". About four minutes on two loaded cores with a reused store.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from api.assembly import assistant_options, build_generator, build_store, retrieval_options
from api.settings import Settings
from assistant.citations import CheckOptions, check_citations
from assistant.service import Assistant
from assistant.sources import Source
from evals.bench_answers import GOLDEN_TODAY, prepare
from evals.bench_retrieval import K, contoso_rank, golden_rank, load_contoso, rank_metrics
from evals.benchkit import (
    CONTOSO,
    REPO,
    Column,
    configure_runtime,
    data_folder,
    format_table,
    machine,
    percentiles,
    write_json,
)
from evals.citation_pairs import Claim, claims_of, rates, states
from evals.golden import GoldenQuestion, Part, load_golden, split_parts
from index.embedding import CachedEmbedder, Embedder
from index.filters import ADMIN, Principal
from index.hits import Hit
from index.hybrid import HybridRetriever, RetrievalOptions, _shingles
from index.keyword import KeywordIndex, Tokenizer
from index.store import ChromaStore

SECTIONS = ("rrf", "duplicates", "citations", "nearby")
DEFAULT_OUT = REPO / "data" / "bench" / "constants.json"
RRF_GRID = (1, 2, 5, 10, 20, 60)
DUPLICATE_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
NO_COLLAPSE = 1.01  # no word-shingle Jaccard reaches it: nothing collapses
# The uncollapsed ranking is read this deep: the deepest that draws the same candidates as
# k=10 (max(candidates, 2k)), since the dense index answers a larger k differently.
ORDER_K = RetrievalOptions.candidates // 2
LEXICAL_GRID = (0.0, 0.2, 0.4, 0.6)
THRESHOLD_GRID = (0.35, 0.4, 0.45, 0.5, 0.525, 0.55, 0.575, 0.6, 0.65)
TIE_GRID = (0.0, 0.01, 0.02, 0.05)
NEARBY_GRID = (0.2, 0.25, 0.3)
REFUSE_ALL = 1.01  # a refusal threshold no cosine similarity reaches
ALL = "all"
CACHE_ENTRIES = 500_000
T = TypeVar("T", bound=Hashable)


def choose(grid: Sequence[T], score: Callable[[T], tuple[float, ...]], default: T) -> T:
    """The grid value with the highest score (tuples compare in order); the default when it
    ties with the best, else the first best."""
    best = max(score(v) for v in grid)
    if default in grid and score(default) == best:
        return default
    return next(v for v in grid if score(v) == best)


def collapsed(order: Sequence[str], kept: Sequence[str]) -> list[str]:
    """The chunks collapsed before the last kept one: those of the uncollapsed ranking `order`
    up to the last chunk of `kept` (the collapsed ranking, a subsequence of it) not kept."""
    positions = [order.index(c) for c in kept if c in order]
    if not positions:
        return []
    keep = set(kept)
    return [c for c in order[: max(positions) + 1] if c not in keep]


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _share(flags: Sequence[bool]) -> float | None:
    return _r(float(np.mean(flags))) if flags else None


# -- one store and the questions asked of it ---------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A question: as whom, in which part, and the rank of its first hit (None for one that
    has no answer)."""

    key: str
    query: str
    principal: Principal
    part: str  # the golden part, or ALL
    answerable: bool
    rank: Callable[[Sequence[Hit]], int | None]
    expected: tuple[str, ...] = ()  # documents that answer it, where known
    forbidden: tuple[str, ...] = ()


def no_rank(hits: Sequence[Hit]) -> None:
    return None


def golden_cases(questions: Sequence[GoldenQuestion]) -> list[Case]:
    parts = split_parts(questions)
    return [
        Case(
            q.id,
            q.question,
            Principal.of(*q.principal_groups),
            parts[q.id].value,
            q.answerable,
            functools.partial(golden_rank, question=q) if q.answerable else no_rank,
            tuple(q.expected_docs),
            tuple(q.forbidden_docs),
        )
        for q in questions
    ]


def contoso_cases() -> list[Case]:
    questions, dontknows = load_contoso(CONTOSO / "qa")
    cases = [
        Case(
            f"dev:{q.number}",
            q.question,
            ADMIN,
            ALL,
            True,
            functools.partial(contoso_rank, ref=q.ref),
        )
        for q in questions
    ]
    return cases + [
        Case(f"dontknow:{n}", q, ADMIN, ALL, False, no_rank) for n, q in enumerate(dontknows, 1)
    ]


@dataclass
class Store:
    """One ingested store and what the sweeps build over it, as api/assembly.py builds it."""

    settings: Settings
    store: ChromaStore
    embedder: Embedder  # remembers vectors: every variant embeds the same texts
    keyword: KeywordIndex
    ingest: dict[str, Any]

    @classmethod
    def opened(cls, dataset: str, workdir: Path) -> Store:
        settings, parts = prepare(dataset, workdir)
        store = build_store(settings)
        keyword = KeywordIndex(store, settings.keyword_index_path, Tokenizer())
        embedder = CachedEmbedder(parts.embedder, CACHE_ENTRIES)
        return cls(settings, store, embedder, keyword, parts.ingest)

    def retriever(self, **changes: Any) -> HybridRetriever:
        options = dataclasses.replace(retrieval_options(self.settings), **changes)
        return HybridRetriever(self.store, self.embedder, self.keyword, options)

    def search(self, retriever: HybridRetriever, case: Case, k: int = K) -> list[Hit]:
        today = self.settings.today_date()
        return retriever.retrieve(case.query, k, today=today, principal=case.principal)

    def assistant(self, **changes: Any) -> Assistant:
        options = dataclasses.replace(assistant_options(self.settings), **changes)
        generator = build_generator(self.settings, self.embedder, "extractive")  # never called
        return Assistant(
            self.retriever(),
            generator,
            self.embedder,
            today=self.settings.today_date,
            options=options,
        )


def part_names(parts: Sequence[str]) -> list[str]:
    """The parts present (calibration first), then the whole set."""
    order = [p.value for p in Part]
    return [*sorted(set(parts) - {ALL}, key=order.index), ALL]


def by_part(
    parts: Mapping[str, str], values: Mapping[str, Any], summary: Callable[[list[Any]], Any]
) -> dict[str, Any]:
    """summary() of the values of each part (key -> part) and of all of them."""
    return {
        name: summary([v for key, v in values.items() if name == ALL or parts[key] == name])
        for name in part_names(list(parts.values()))
    }


def chosen(rows: dict[str, Any], keys: Sequence[str], default: Any) -> dict[str, Any]:
    """The grid value best on the calibration part by `keys` in order (if there is one)."""
    calibration = Part.CALIBRATION.value
    if calibration not in next(iter(rows.values())):
        return {}
    value = choose(list(rows), lambda v: tuple(rows[v][calibration][k] for k in keys), str(default))
    return {"chosen_on_calibration": value, "by": list(keys), "default": str(default)}


# -- rrf_k ------------------------------------------------------------------------------------


def sweep_rrf(store: Store, cases: Sequence[Case]) -> dict[str, Any]:
    cases = [c for c in cases if c.answerable]
    parts = {c.key: c.part for c in cases}
    rows = {}
    ranks = {}
    for k in RRF_GRID:
        retriever = store.retriever(rrf_k=k)
        ranks[k] = {c.key: c.rank(store.search(retriever, c)) for c in cases}
        rows[str(k)] = by_part(parts, ranks[k], rank_metrics)
    default = ranks[RetrievalOptions.rrf_k]
    return {
        "grid": rows,
        "against_default": {str(k): moved(default, ranks[k]) for k in RRF_GRID},
        **chosen(rows, ("hit@5", "mrr"), RetrievalOptions.rrf_k),
    }


def moved(before: Mapping[str, int | None], after: Mapping[str, int | None]) -> dict[str, int]:
    """Questions whose first hit ranks higher (better) or lower (worse) after than before;
    no hit in the top 10 ranks below every hit."""

    def place(rank: int | None) -> int:
        return K + 1 if rank is None else rank

    pairs = [(place(before[key]), place(after[key])) for key in before]
    return {"better": sum(a < b for b, a in pairs), "worse": sum(a > b for b, a in pairs)}


# -- duplicate_similarity ---------------------------------------------------------------------


def merged_into(hit: Hit, kept: Sequence[Hit], threshold: float) -> tuple[Hit, float] | None:
    """The kept hit a collapsed one was merged into: the first whose word-shingle Jaccard
    (index.hybrid's own measure) reaches the threshold."""
    shingles = _shingles(hit.text)
    for other in kept:
        value = jaccard(shingles, _shingles(other.text))
        if value >= threshold:
            return other, value
    return None


def duplicate_row(case: Case, order: Sequence[Hit], hits: Sequence[Hit], t: float) -> dict:
    ids = [h.chunk_id for h in order]
    lost = collapsed(ids, [h.chunk_id for h in hits])
    pairs = []
    for cid in lost:
        at = ids.index(cid)
        found = merged_into(order[at], [h for h in order[:at] if h.chunk_id not in lost], t)
        if found:
            pairs.append((order[at].doc_id, found[0].doc_id, round(found[1], 3)))
    rank = case.rank(hits)
    return {
        "collapsed": len(lost),
        "pairs": pairs,
        "hit@5": rank is not None and rank <= 5,
        "docs@10": len({h.doc_id for h in hits}),
    }


def duplicate_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    across = [(a, b, j) for r in rows for a, b, j in r["pairs"] if a != b]
    return {
        "n": len(rows),
        "collapsed": sum(r["collapsed"] for r in rows),
        "questions_with_a_collapse": sum(r["collapsed"] > 0 for r in rows),
        "into_another_document": len(across),
        "hit@5": _share([r["hit@5"] for r in rows]),
        "docs@10": _r(float(np.mean([r["docs@10"] for r in rows])), 2),
        "jaccard_of_collapses": percentiles([j for r in rows for *_, j in r["pairs"]], (10, 50)),
        "pairs_across_documents": sorted({(a, b) for a, b, _ in across}),
    }


def jaccard(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> float:
    common = len(a & b)
    return common / ((len(a) + len(b) - common) or 1)


def closest_pair(hits: Sequence[Hit]) -> float:
    """The highest word-shingle Jaccard between two of the hits."""
    shingles = [_shingles(h.text) for h in hits]
    pairs = (jaccard(a, b) for i, a in enumerate(shingles) for b in shingles[i + 1 :])
    return max(pairs, default=0.0)


def store_duplicates(store: Store) -> dict[str, Any]:
    """Chunk pairs of the whole store (superseded and restricted documents too) whose
    word-shingle Jaccard reaches each threshold of the grid: within one document, or across
    two (with the document pairs)."""
    _, texts, metadatas = store.store.all_chunks()
    shingles = [_shingles(t) for t in texts]
    docs = [str(md.get("doc_id", "")) for md in metadatas]
    low = min(DUPLICATE_GRID)
    found: list[tuple[float, str, str]] = []
    for i, a in enumerate(shingles):
        for j in range(i + 1, len(shingles)):
            b = shingles[j]
            if min(len(a), len(b)) < low * max(len(a), len(b)):
                continue  # the Jaccard cannot reach the lowest threshold
            value = jaccard(a, b)
            if value >= low:
                found.append((value, docs[i], docs[j]))
    out: dict[str, Any] = {"chunks": len(texts)}
    for t in DUPLICATE_GRID:
        at = [(a, b) for value, a, b in found if value >= t]
        out[str(t)] = {
            "same_document": sum(a == b for a, b in at),
            "two_documents": sum(a != b for a, b in at),
            "document_pairs": sorted({tuple(sorted((a, b))) for a, b in at if a != b}),
        }
    return out


def sweep_duplicates(store: Store, cases: Sequence[Case]) -> dict[str, Any]:
    cases = [c for c in cases if c.answerable]
    parts = {c.key: c.part for c in cases}
    off = store.retriever(duplicate_similarity=NO_COLLAPSE)
    orders = {c.key: store.search(off, c, ORDER_K) for c in cases}
    closest = [closest_pair(orders[c.key][:K]) for c in cases]
    rows = {}
    for t in (*DUPLICATE_GRID, NO_COLLAPSE):
        retriever = store.retriever(duplicate_similarity=t)
        found = {
            c.key: duplicate_row(c, orders[c.key], store.search(retriever, c), t) for c in cases
        }
        rows["off" if t == NO_COLLAPSE else str(t)] = by_part(parts, found, duplicate_summary)
    keys = ("hit@5", "docs@10")
    return {
        "grid": rows,
        "closest_pair_in_uncollapsed_top10": score_spread(closest),
        "store": store_duplicates(store),
        **chosen(rows, keys, RetrievalOptions.duplicate_similarity),
    }


# -- the citation checker ---------------------------------------------------------------------


def closed(text: str) -> str:
    """The claim ending as a sentence, so the checker does not take it for a cut-off one."""
    return text if text.rstrip().endswith((".", "!", "?")) else f"{text.rstrip()}."


def support(claim: Claim, source: Source, embedder: Embedder, weight: float) -> float | None:
    """The checker's support of the claim by one source: the claim cites it, and a threshold
    of 0 keeps the sentence, so its support is reported."""
    options = CheckOptions(threshold=0.0, lexical_weight=weight)
    checked = check_citations(f"{closed(claim.text)} [{source.n}]", [source], embedder, options)
    return checked.sentences[0].support if len(checked.sentences) == 1 else None


def credited(
    claim: Claim, sources: Sequence[Source], embedder: Embedder, margin: float
) -> Source | None:
    """The source the checker credits the claim to when it cites nothing (None: unsupported)."""
    checked = check_citations(
        closed(claim.text), sources, embedder, CheckOptions(tie_margin=margin)
    )
    if len(checked.sentences) != 1 or not checked.sentences[0].sources:
        return None
    return next(s for s in sources if s.n == checked.sentences[0].sources[0])


@dataclass(frozen=True)
class Scored:
    claim: Claim
    part: str
    supports: dict[float, tuple[list[float], list[float]]]  # weight -> (positives, negatives)
    credits: dict[float, tuple[str, bool] | None]  # margin -> (document, states the facts)


def score_claims(
    claim_list: Sequence[Claim], part: str, sources: Sequence[Source], embedder: Embedder
) -> list[Scored]:
    by_n = {s.n: s for s in sources}
    out = []
    for c in claim_list:
        supports = {}
        for w in LEXICAL_GRID:
            pos = [support(c, by_n[n], embedder, w) for n in c.positives]
            neg = [support(c, by_n[n], embedder, w) for n in c.negatives]
            supports[w] = ([s for s in pos if s is not None], [s for s in neg if s is not None])
        credits: dict[float, tuple[str, bool] | None] = {}
        for m in TIE_GRID:
            source = credited(c, sources, embedder, m)
            right = source is not None and all(states(source.text, f) for f in c.facts)
            credits[m] = None if source is None else (source.doc_id, right)
        out.append(Scored(c, part, supports, credits))
    return out


def support_grid(scored: Sequence[Scored]) -> dict[str, Any]:
    """Per lexical weight and threshold: the rates over all pairs, and over the pairs the
    names-and-numbers rule passes (support above 0), which only the threshold decides."""
    grid: dict[str, Any] = {}
    zero: dict[str, Any] = {}
    for w in LEXICAL_GRID:
        pos = [s for x in scored for s in x.supports[w][0]]
        neg = [s for x in scored for s in x.supports[w][1]]
        zero[str(w)] = {
            "positives": sum(s == 0 for s in pos),
            "negatives": sum(s == 0 for s in neg),
        }
        for t in THRESHOLD_GRID:
            grid[f"{w}/{t}"] = {
                "all": rates(pos, neg, t),
                "passed_names": rates([s for s in pos if s > 0], [s for s in neg if s > 0], t),
            }
    return {
        "positives": sum(len(x.supports[0.0][0]) for x in scored),
        "negatives": sum(len(x.supports[0.0][1]) for x in scored),
        "support_0": zero,
        "grid": grid,
    }


def tie_summary(scored: Sequence[Scored]) -> dict[str, Any]:
    out: dict[str, Any] = {"claims": len(scored)}
    for m in TIE_GRID:
        changes = [
            {"id": x.claim.qid, "from": x.credits[0.0], "to": x.credits[m]}
            for x in scored
            if x.credits[m] != x.credits[0.0]
        ]
        out[str(m)] = {
            "credited": sum(x.credits[m] is not None for x in scored),
            "credited_source_states_the_facts": sum(
                credit is not None and credit[1] for credit in (x.credits[m] for x in scored)
            ),
            "changed_from_0": changes,
        }
    return out


def sweep_citations(store: Store, questions: Sequence[GoldenQuestion]) -> dict[str, Any]:
    parts = split_parts(questions)
    assistant = store.assistant()
    scored: list[Scored] = []
    for q in questions:
        if not (q.answerable and q.key_facts):
            continue
        context = assistant.prepare(q.question, principal=Principal.of(*q.principal_groups))
        texts = [(s.n, s.doc_id, s.text) for s in context.sources]
        found = claims_of(q.id, q.reference_answer, q.key_facts, q.expected_docs, texts)
        scored += score_claims(found, parts[q.id].value, context.sources, store.embedder)
    out: dict[str, Any] = {}
    for kind in ("reference", "document"):
        mine = [x for x in scored if x.claim.kind == kind]
        names = part_names([x.part for x in mine])
        out[kind] = {
            "support": {
                p: support_grid([x for x in mine if p == ALL or x.part == p]) for p in names
            },
            "tie_margin": tie_summary(mine),
        }
    grid = out["reference"]["support"][Part.CALIBRATION.value]["grid"]
    default = CheckOptions()
    out["chosen_on_calibration"] = choose(
        list(grid),
        lambda key: (grid[key]["passed_names"]["balanced"] or 0.0,),
        f"{default.lexical_weight}/{default.threshold}",
    )
    out["by"] = "balanced accuracy, reference claims the names rule passes (weight/threshold)"
    out["default"] = f"{default.lexical_weight}/{default.threshold}"
    return out


# -- nearby_threshold -------------------------------------------------------------------------


def sweep_nearby(store: Store, cases: Sequence[Case]) -> dict[str, Any]:
    assistant = store.assistant()
    refusing = {
        t: store.assistant(refusal_threshold=REFUSE_ALL, nearby_threshold=t) for t in NEARBY_GRID
    }
    rows = []
    for c in cases:
        context = assistant.prepare(c.query, principal=c.principal)
        named = {
            str(t): [n["doc_id"] for n in a.ask(c.query, principal=c.principal).nearby]
            for t, a in refusing.items()
        }
        row = {"key": c.key, "answerable": c.answerable, "top": round(context.top, 4)}
        rows.append(row | {"named": named, "expected": c.expected, "forbidden": c.forbidden})
    return nearby_summary(rows, assistant.options.refusal_threshold)


def score_spread(values: Sequence[float]) -> dict[str, Any]:
    spread = percentiles(values, (10, 25, 50, 75, 90), digits=3)
    return {"n": len(values), "min": _r(min(values, default=None)), **spread} | {
        "max": _r(max(values, default=None))
    }


def nearby_summary(rows: Sequence[dict[str, Any]], gate: float) -> dict[str, Any]:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    gated = [r for r in rows if r["top"] < gate]
    labelled = [r for r in answerable if r["expected"]]
    out: dict[str, Any] = {
        "top_dense": {
            "answerable": score_spread([r["top"] for r in answerable]),
            "unanswerable": score_spread([r["top"] for r in unanswerable]),
        },
        "gate": gate,
        "refused_by_the_gate": {
            "answerable": sum(r["answerable"] for r in gated),
            "unanswerable": sum(not r["answerable"] for r in gated),
        },
    }
    for t in NEARBY_GRID:
        key = str(t)
        out[key] = {
            "unanswerable_naming_one": _share([bool(r["named"][key]) for r in unanswerable]),
            "unanswerable_named_mean": _r(
                float(np.mean([len(r["named"][key]) for r in unanswerable])), 2
            ),
            "gated_naming_one": _share([bool(r["named"][key]) for r in gated]),
            "gated_named_mean": _r(float(np.mean([len(r["named"][key]) for r in gated])), 2)
            if gated
            else None,
            "answerable_naming_an_expected": _share(
                [bool(set(r["named"][key]) & set(r["expected"])) for r in labelled]
            ),
            "forbidden_named": sum(bool(set(r["named"][key]) & set(r["forbidden"])) for r in rows),
        }
    out["questions"] = list(rows)
    return out


# -- output -----------------------------------------------------------------------------------


def choice_line(result: dict[str, Any]) -> list[str]:
    if "chosen_on_calibration" not in result:
        return []
    return [
        f"chosen on the calibration part (by {result['by']}): {result['chosen_on_calibration']}"
        f" (default {result.get('default', '')})"
    ]


def rrf_lines(name: str, result: dict[str, Any]) -> list[str]:
    grid = result["grid"]
    parts = list(next(iter(grid.values())))
    metrics = ("hit@1", "hit@5", "mrr")
    columns = [Column(f"{name} rrf_k", 16, "<")]
    columns += [Column(f"{p[:5]} {m}", 12) for p in parts for m in metrics]
    columns.append(Column("better/worse", 14))
    rows = [
        [
            k,
            *(grid[k][p][m] for p in parts for m in metrics),
            "{better}/{worse}".format(**result["against_default"][k]),
        ]
        for k in grid
    ]
    return [*format_table(columns, rows), *choice_line(result)]


def duplicate_lines(name: str, result: dict[str, Any]) -> list[str]:
    grid = result["grid"]
    parts = list(next(iter(grid.values())))
    columns = [Column(f"{name} duplicates", 18, "<"), Column("collapsed", 10)]
    columns += [Column("q with one", 11), Column("other doc", 10)]
    columns += [Column(f"{p[:5]} hit@5", 12) for p in parts]
    columns += [Column(f"{p[:5]} docs@10", 14) for p in parts]
    rows = []
    for t, row in grid.items():
        whole = row[ALL]
        cells = [whole["collapsed"], whole["questions_with_a_collapse"]]
        cells.append(whole["into_another_document"])
        cells += [row[p]["hit@5"] for p in parts] + [row[p]["docs@10"] for p in parts]
        rows.append([t, *cells])
    closest = result["closest_pair_in_uncollapsed_top10"]
    lines = [
        f"closest pair of chunks in each uncollapsed top 10: p50 {closest['p50']}, "
        f"p90 {closest['p90']}, max {closest['max']}",
        f"chunk pairs of the whole store ({result['store']['chunks']} chunks) at each threshold, "
        "same document / two documents: "
        + "; ".join(
            f"{t}: {row['same_document']}/{row['two_documents']}"
            for t, row in result["store"].items()
            if t != "chunks"
        ),
    ]
    return [*format_table(columns, rows), *lines, *choice_line(result)]


def support_lines(kind: str, part: str, found: dict[str, Any]) -> list[str]:
    title = (
        f"{kind} claims, {part} ({found['positives']} positive and {found['negatives']} "
        "negative pairs): supported/rejected among those the names rule passes"
    )
    columns = [Column("weight", 8, "<"), *(Column(str(t), 12) for t in THRESHOLD_GRID)]
    rows = [
        [w, *(cell(found["grid"][f"{w}/{t}"]["passed_names"]) for t in THRESHOLD_GRID)]
        for w in LEXICAL_GRID
    ]
    zero = found["support_0"]["0.0"]
    default = CheckOptions()
    at_default = found["grid"][f"{default.lexical_weight}/{default.threshold}"]["all"]
    return [
        "",
        title,
        *format_table(columns, rows),
        f"support 0 (a number or name missing from the source): {zero['positives']} positives, "
        f"{zero['negatives']} negatives; all pairs at the default: {cell(at_default)}",
    ]


def citation_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for kind in ("reference", "document"):
        for part, found in result[kind]["support"].items():
            lines += support_lines(kind, part, found)
        ties = result[kind]["tie_margin"]
        lines.append(f"{kind} claims, tie margin ({ties['claims']} claims, unmarked, all sources):")
        for m in TIE_GRID:
            row = ties[str(m)]
            lines.append(
                f"  {m}: credited {row['credited']}, to a source stating the facts "
                f"{row['credited_source_states_the_facts']}, changed from 0: "
                f"{row['changed_from_0']}"
            )
    lines.append(choice_line(result)[0])
    return lines


def cell(row: dict[str, Any]) -> str:
    return f"{row['supported']}/{row['rejected']}"


def nearby_lines(name: str, result: dict[str, Any]) -> list[str]:
    lines = [
        f"{name} top dense score, {kind} ({s['n']}): min {s['min']} p10 {s['p10']} "
        f"p25 {s['p25']} p50 {s['p50']} p75 {s['p75']} p90 {s['p90']} max {s['max']}"
        for kind, s in result["top_dense"].items()
    ]
    gated = result["refused_by_the_gate"]
    lines.append(
        f"refused by the gate (top < {result['gate']}): {gated['answerable']} answerable, "
        f"{gated['unanswerable']} unanswerable"
    )
    keys = [k for k in result[str(NEARBY_GRID[0])] if k != "forbidden_named"]
    columns = [Column(f"{name} nearby", 16, "<"), *(Column(k[:26], 28) for k in keys)]
    columns.append(Column("forbidden", 10))
    rows = [
        [t, *(result[str(t)][k] for k in keys), result[str(t)]["forbidden_named"]]
        for t in NEARBY_GRID
    ]
    return [*lines, *format_table(columns, rows)]


def print_report(result: dict[str, Any]) -> None:
    lines: list[str] = []
    for name in ("golden", "contoso"):
        section = result.get(name, {})
        if "rrf" in section:
            lines += ["", *rrf_lines(name, section["rrf"])]
        if "duplicates" in section:
            lines += ["", *duplicate_lines(name, section["duplicates"])]
        if "citations" in section:
            lines += citation_lines(section["citations"])
        if "nearby" in section:
            lines += ["", *nearby_lines(name, section["nearby"])]
    print("\n".join(lines), flush=True)


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evals.sweep_constants", description=__doc__)
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this sweep (repeatable)"
    )
    parser.add_argument(
        "--contoso", action="store_true", help="also sweep rrf, duplicates, nearby on contoso_hr"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="a data folder to keep and reuse (default: a fresh temporary folder)",
    )
    return parser.parse_args(argv)


SWEEPS: dict[str, Callable[[Store, Sequence[Case]], dict[str, Any]]] = {
    "rrf": sweep_rrf,
    "duplicates": sweep_duplicates,
    "nearby": sweep_nearby,
}


def sweep(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    sections = tuple(dict.fromkeys(args.only or SECTIONS))
    result: dict[str, Any] = {"sections": sections, "load_1min_at_phase_start": {}}

    def phase(name: str) -> None:
        load = result["load_1min_at_phase_start"][name] = round(os.getloadavg()[0], 2)
        print(f"{name} ... (load {load})", file=sys.stderr, flush=True)

    questions = load_golden()
    datasets = {"golden": golden_cases(questions)}
    if args.contoso:
        datasets["contoso"] = contoso_cases()
    for name, cases in datasets.items():
        store = Store.opened(name, workdir / name)
        result[name] = {"ingest": store.ingest}
        for section in sections:
            if section in SWEEPS:
                phase(f"{name}: {section}")
                result[name][section] = SWEEPS[section](store, cases)
            elif name == "golden":  # citations: labelled by the golden key facts
                phase(f"{name}: {section}")
                result[name][section] = sweep_citations(store, questions)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    configure_runtime()
    os.environ.setdefault("KB_TODAY", GOLDEN_TODAY)
    args = parse_args(argv)
    started = time.perf_counter()
    with data_folder(args.data_dir, "kb-sweep-") as folder:
        result = sweep(args, folder)
    result["machine"] = machine()
    result["run_seconds"] = round(time.perf_counter() - started, 1)
    write_json(args.out, result)
    print_report(result)
    print(f"run took {result['run_seconds']} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
