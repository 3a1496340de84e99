"""Answer quality and speed per generator (`python -m evals.bench_answers`).

The documents of a dataset (contoso_hr's PDFs, corpus/ for the golden and employee sets, the
look-alike filings' PDFs for `filings`) are copied into a data folder, given minimal sidecars
where they have none, and ingested; then every question goes through `Assistant.ask()` as the
app builds it (api/assembly.py), once per generator. contoso_hr and filings questions are asked
by an administrator, the others by their asker's groups. The filings questions
(scripts/build_lookalike.py) name a filer and a period; their key facts are the figures the
filing states. Golden figures are given for the whole set and for its report part (the refusal
thresholds are calibrated on the other part: evals/golden.py `split_parts`).
Metrics are in evals/answers.py. Each answer is printed as it completes and the JSON file is
rewritten after every question, so a long run (the local model takes tens of seconds per answer
on two cores) can be inspected or cut short (Ctrl-C keeps what is done).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.assembly import (
    build_assistant,
    build_embedder,
    build_generator,
    build_ingester,
    build_retriever,
    build_store,
)
from api.settings import Settings
from assistant.generators import Generator
from assistant.prompt import Turn
from assistant.service import Answer, Assistant
from evals.answers import (
    PageRef,
    Scored,
    by_group,
    citation_match,
    doc_hit,
    faithfulness,
    key_fact_recall,
    leaked_docs,
    parse_reference,
    quality,
    rate,
    refusal_reasons,
    spread,
    warned_stale,
)
from evals.benchkit import (
    CONTOSO,
    REPO,
    Column,
    configure_runtime,
    data_folder,
    format_table,
    machine,
    percentiles,
    prepare_roots,
    read_jsonl,
)
from evals.golden import (
    DATASETS,
    GoldenQuestion,
    Part,
    QuestionType,
    load_dataset,
    split_parts,
)
from index.embedding import Embedder
from index.filters import Principal
from index.hybrid import HybridRetriever

FILINGS = REPO / "evals" / "datasets" / "lookalike-filings"
ROOTS = {
    "contoso": CONTOSO / "docs",
    **dict.fromkeys(DATASETS, REPO / "corpus"),
    "filings": FILINGS / "docs",
}
KEY_FACT_SETS = (*DATASETS, "filings")  # sets scored by key facts and expected documents
GENERATORS = ("extractive", "local")
GOLDEN_TODAY = "2026-11-28"  # the golden set's stale labels hold as of this day
# contoso_hr "don't know" questions that its documents do answer (audited: file, pages and
# section of each answer in evals/datasets/README.md). They keep their label, so the headline
# refusal rate is the dataset's own, and form their own group so the rate without them shows.
DONT_KNOW = "dont_know"
DONT_KNOW_ANSWERED = "dont_know_answered_in_docs"
REPORT_AGGREGATES = "aggregates_report_part"  # golden: the part not used for calibration
AUDITED = REPO / "evals" / "datasets" / "contoso" / "dontknows_answered.jsonl"


# -- questions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    key: str  # "dev:12" (line of qa/dev.jsonl), "dontknow:3", or a golden id
    group: str  # contoso: reference file ("dont_know" for the unanswerable); golden: type
    question: str
    principal: Principal
    answerable: bool
    ref: PageRef | None = None
    golden: GoldenQuestion | None = None
    part: Part | None = None  # golden set: calibration or report part


def contoso_items() -> tuple[list[Item], list[Item]]:
    admin = Principal(admin=True)
    answerable = []
    for n, row in enumerate(read_jsonl(CONTOSO / "qa" / "dev.jsonl"), start=1):
        ref = parse_reference(row["truth"])
        answerable.append(Item(f"dev:{n}", ref.file, row["question"], admin, True, ref=ref))
    answered_in_docs = {row["question"] for row in read_jsonl(AUDITED)}
    unanswerable = [
        Item(
            f"dontknow:{n}",
            DONT_KNOW_ANSWERED if row["question"] in answered_in_docs else DONT_KNOW,
            row["question"],
            admin,
            False,
        )
        for n, row in enumerate(read_jsonl(CONTOSO / "qa" / "dev_dontknows.jsonl"), start=1)
    ]
    missing = answered_in_docs - {i.question for i in unanswerable}
    if missing:
        raise ValueError(f"{AUDITED}: not in dev_dontknows.jsonl: {sorted(missing)}")
    return answerable, unanswerable


def golden_items(dataset: str = "golden") -> tuple[list[Item], list[Item]]:
    """The questions of a set in the golden format; the golden set's carry their part."""
    questions = load_dataset(dataset)
    parts = split_parts(questions) if dataset == "golden" else {}
    items = [
        Item(
            q.id,
            q.type.value,
            q.question,
            Principal.of(*q.principal_groups),
            q.answerable,
            golden=q,
            part=parts.get(q.id),
        )
        for q in questions
    ]
    return [i for i in items if i.answerable], [i for i in items if not i.answerable]


def filings_items() -> list[Item]:
    """The look-alike filings' questions, each about one filing (a single fact) or two (a
    comparison: multi_doc), asked by an administrator."""
    admin = Principal(admin=True)
    items = []
    for row in read_jsonl(FILINGS / "questions.jsonl"):
        kind = QuestionType.MULTI_DOC if len(row["expected_docs"]) > 1 else QuestionType.SINGLE_FACT
        q = GoldenQuestion(
            id=row["id"],
            question=row["question"],
            type=kind,
            expected_docs=row["expected_docs"],
            key_facts=row["key_facts"],
            reference_answer="",
            principal_groups=["admin"],
        )
        items.append(Item(q.id, kind.value, q.question, admin, True, golden=q))
    return items


def select_items(
    dataset: str,
    limit: int | None,
    unanswerable_limit: int | None,
    types: Sequence[str] = (),
) -> list[Item]:
    """The questions asked: `limit` answerable and `unanswerable_limit` unanswerable ones,
    evenly spread, of the groups in `types` only when given (a golden-format set's question
    types, contoso's reference files)."""
    if dataset == "contoso":
        answerable, unanswerable = contoso_items()
    elif dataset == "filings":
        answerable, unanswerable = filings_items(), []
    else:
        answerable, unanswerable = golden_items(dataset)
    if types:
        answerable = [i for i in answerable if i.group in types]
        unanswerable = [i for i in unanswerable if i.group in types]
    return spread(answerable, limit) + spread(unanswerable, unanswerable_limit)


# -- scoring ----------------------------------------------------------------------------------


def score(item: Item, answer: Answer, wall_ms: float, threshold: float) -> Scored:
    timings = answer.timings_ms
    common: dict[str, Any] = {
        "key": item.key,
        "group": item.group,
        "answerable": item.answerable,
        "refused": answer.refused,
        "refusal_reason": answer.refusal_reason,
        "faith": faithfulness(answer, threshold),
        "first_token_ms": timings.get("first_token"),
        "total_ms": timings.get("total"),
        "wall_ms": round(wall_ms, 1),
    }
    if item.ref is not None:
        return Scored(**common, citation_match=citation_match(answer, item.ref))
    q = item.golden
    if q is None:
        return Scored(**common)
    return Scored(
        **common,
        key_fact_recall=key_fact_recall(answer.answer, q.key_facts) if q.answerable else None,
        doc_hit=doc_hit(answer, q.expected_docs) if q.answerable else None,
        leaks=tuple(leaked_docs(answer, q.forbidden_docs)),
        must_warn_stale=q.must_warn_stale,
        warned=warned_stale(answer),
    )


def answer_record(scored: Scored, answer: Answer) -> dict[str, Any]:
    citations = [
        {
            "n": c.n,
            "doc_id": c.doc_id,
            "file": Path(c.path).name,
            "page": c.page,
            "support": c.support,
            "stale": c.stale,
        }
        for c in answer.citations
    ]
    return {
        **scored.to_json(),
        "standalone_question": answer.standalone_question,
        "answer": answer.answer,
        "citations": citations,
        "unsupported": answer.unsupported,
        "warnings": answer.warnings,
        "timings_ms": answer.timings_ms,
    }


def timing_summary(rows: Sequence[Scored]) -> dict[str, Any]:
    first = [r.first_token_ms for r in rows if r.first_token_ms is not None]
    total = [r.total_ms for r in rows if r.total_ms is not None]
    return {
        "first_token_ms": {"n": len(first), **percentiles(first, (50, 95), digits=1)},
        "total_ms": {"n": len(total), **percentiles(total, (50, 95), digits=1)},
        "wall_ms": percentiles([r.wall_ms for r in rows], (50, 95), digits=1),
    }


def aggregates(rows: Sequence[Scored], golden: bool) -> dict[str, Any]:
    audited = [r for r in rows if not r.answerable and r.group != DONT_KNOW_ANSWERED]
    extra = {}
    if len(audited) < sum(not r.answerable for r in rows):
        extra["refusal_rate_without_answered_in_docs"] = rate(r.refused for r in audited)
    return {
        "asked": len(rows),
        **quality(rows, golden),
        **extra,
        "timings": timing_summary(rows),
        "refusal_reasons": refusal_reasons(rows),
        "per_group": by_group(rows, golden),
    }


# -- output -----------------------------------------------------------------------------------


def write_atomic(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def p50_p95(summary: dict[str, Any]) -> str:
    return f"{summary.get('p50')} / {summary.get('p95')}"


def summary_rows(agg: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [
        ["asked (answerable + unanswerable)", f"{agg['answerable']} + {agg['unanswerable']}"],
        ["answered rate (answerable)", agg["answered_rate"]],
        ["refusal rate (unanswerable)", agg["refusal_rate"]],
    ]
    if "refusal_rate_without_answered_in_docs" in agg:
        rows.append(
            ["refusal rate, answered-in-docs out", agg["refusal_rate_without_answered_in_docs"]]
        )
    if "citation_match" in agg:
        rows.append(["citation match (ref page +-1)", agg["citation_match"]])
        rows.append(["citation match, answered only", agg["citation_match_when_answered"]])
    for key, title in (
        ("key_fact_recall", "key-fact recall"),
        ("doc_hit", "expected doc cited"),
        ("leaks", "forbidden leaks (want 0)"),
        ("stale_warning_rate", "stale warning rate"),
    ):
        if key in agg:
            rows.append([title, agg[key]])
    timings = agg["timings"]
    rows += [
        ["faithfulness (cited sentences)", agg["faithfulness"]],
        ["faithfulness before the check", agg["faithfulness_before_check"]],
        ["removed sentences per answer", agg["removed_per_answer"]],
        ["first token ms p50 / p95", p50_p95(timings["first_token_ms"])],
        ["total ms p50 / p95", p50_p95(timings["total_ms"])],
    ]
    return rows


def group_rows(agg: dict[str, Any], golden: bool) -> list[list[Any]]:
    rows = []
    for group, g in agg["per_group"].items():
        row = [
            group,
            g["answerable"] + g["unanswerable"],
            g["answered_rate"] if g["answerable"] else "",
            g["refusal_rate"] if g["unanswerable"] else "",
        ]
        keys = ("key_fact_recall", "doc_hit") if golden else ("citation_match",)
        rows.append(row + [g.get(key, "") for key in keys])
    return rows


def print_table(name: str, dataset: str, agg: dict[str, Any]) -> None:
    lines = ["", f"== {name} on {dataset} =="]
    lines += format_table([Column("metric", 36, "<"), Column("value", 18)], summary_rows(agg))
    golden = dataset in KEY_FACT_SETS
    columns = [Column("group", 44, "<"), Column("n", 5), Column("answered", 10)]
    columns.append(Column("refused", 9))
    if golden:
        columns += [Column("fact recall", 12), Column("doc hit", 9)]
    else:
        columns.append(Column("cite match", 12))
    lines += ["", *format_table(columns, group_rows(agg, golden))]
    reasons = ", ".join(f"{k}: {v}" for k, v in agg["refusal_reasons"].items()) or "none"
    lines.append(f"refusals by reason: {reasons}")
    print("\n".join(lines), flush=True)


def progress_line(
    name: str, i: int, total: int, scored: Scored, seconds: float, elapsed: float
) -> str:
    if scored.refused:
        verdict = "refused" + ("" if not scored.answerable else " (answerable)")
    else:
        verdict = "answered" + ("" if scored.answerable else " (unanswerable)")
    extra = ""
    if scored.citation_match is not None:
        extra = " cite-hit" if scored.citation_match else " cite-miss"
    elif scored.key_fact_recall is not None:
        extra = f" facts {scored.key_fact_recall:.2f}"
    if scored.leaks:
        extra += f" LEAK {','.join(scored.leaks)}"
    removed = f" removed {scored.faith.removed}" if scored.faith.removed else ""
    return (
        f"  {name} [{i}/{total}] {scored.key}: {verdict}{extra}{removed} "
        f"{seconds:.1f} s (elapsed {elapsed:.0f} s, load {os.getloadavg()[0]:.2f})"
    )


# -- running ----------------------------------------------------------------------------------


@dataclass
class Run:
    """One generator's run, kept in the result dict that is rewritten after every answer.
    `report_keys`: the golden set's report part, aggregated apart as well."""

    name: str
    golden: bool
    section: dict[str, Any]
    scored: list[Scored] = field(default_factory=list)
    report_keys: frozenset[str] | None = None

    def add(self, scored: Scored, record: dict[str, Any]) -> None:
        self.scored.append(scored)
        self.section["records"].append(record)
        self.section["aggregates"] = aggregates(self.scored, self.golden)
        if self.report_keys is not None:
            report = [s for s in self.scored if s.key in self.report_keys]
            self.section[REPORT_AGGREGATES] = aggregates(report, self.golden) if report else {}


def warm_up(generator: Generator) -> float:
    """Load the generator's model (a short rewrite call); seconds taken."""
    started = time.perf_counter()
    generator.rewrite([Turn("user", "What is this knowledge base about?")], "and who owns it?")
    return round(time.perf_counter() - started, 2)


def run_generator(
    name: str,
    settings: Settings,
    parts: Parts,
    items: Sequence[Item],
    result: dict[str, Any],
    out: Path,
) -> Run:
    generator = build_generator(settings, parts.embedder, name)
    assistant = build_assistant(settings, parts.retriever, parts.embedder, generator)
    threshold = assistant.options.check.threshold
    section: dict[str, Any] = {
        "status": "warming up",
        "threshold": threshold,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "aggregates": {},
        "records": [],
    }
    result["generators"][name] = section
    write_atomic(out, result)
    print(f"{name}: loading ... (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
    section["warm_up_seconds"] = warm_up(generator)
    section["status"] = "running"
    report = frozenset(i.key for i in items if i.part is Part.REPORT)
    golden = result["dataset"] in KEY_FACT_SETS
    run = Run(name, golden, section, report_keys=report if result["dataset"] == "golden" else None)
    started = time.perf_counter()
    for i, item in enumerate(items, start=1):
        earlier = item.golden.history if item.golden else []
        history = conversation(assistant, earlier, item.principal)
        asked = time.perf_counter()
        answer = assistant.ask(item.question, principal=item.principal, history=history)
        seconds = time.perf_counter() - asked
        scored = score(item, answer, seconds * 1000, threshold)
        run.add(scored, answer_record(scored, answer))
        elapsed = time.perf_counter() - started
        print(progress_line(name, i, len(items), scored, seconds, elapsed), file=sys.stderr)
        sys.stderr.flush()
        section["elapsed_seconds"] = round(elapsed, 1)
        write_atomic(out, result)
    section["status"] = "done"
    section["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_atomic(out, result)
    return run


def conversation(
    assistant: Assistant, questions: Sequence[str], principal: Principal
) -> list[Turn]:
    """The turns before a follow-up (the `history` of its set): each earlier question asked
    with the turns before it and answered by `assistant`, as in a chat. Empty for a question
    asked on its own."""
    turns: list[Turn] = []
    for earlier in questions:
        answer = assistant.ask(earlier, principal=principal, history=turns)
        turns += [Turn("user", earlier), Turn("assistant", answer.answer)]
    return turns


# -- the store --------------------------------------------------------------------------------


@dataclass
class Parts:
    embedder: Embedder
    retriever: HybridRetriever
    ingest: dict[str, Any]


def product_settings(data_dir: Path) -> Settings:
    """The product's settings (defaults and KB_* variables, no .env), data under data_dir, and
    a relative model path taken from the repository root."""
    settings = Settings(data_dir=data_dir, _env_file=None)
    if not settings.llm_model_path.is_absolute():
        settings = settings.model_copy(update={"llm_model_path": REPO / settings.llm_model_path})
    return settings


def prepare(dataset: str, workdir: Path) -> tuple[Settings, Parts]:
    """Copy and ingest the dataset's documents (unchanged ones are skipped on a reused store)."""
    copies, notes = prepare_roots([ROOTS[dataset]], workdir)
    if not copies:
        sys.exit(f"missing documents folder: {notes}")
    settings = product_settings(workdir)
    embedder = build_embedder(settings)
    store = build_store(settings)
    print(f"ingesting {ROOTS[dataset]} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    report = build_ingester(settings, store, embedder).sync(copies[0])
    ingest = {
        "root": notes[0],
        "seconds": round(time.perf_counter() - started, 1),
        "added": len(report.added) + len(report.updated),
        "unchanged": len(report.unchanged),
        "failed": [f.to_json() for f in report.failed],
        "chunks": store.count_chunks(),
    }
    retriever = build_retriever(settings, store, embedder)
    retriever.warm()
    return settings, Parts(embedder, retriever, ingest)


def settings_summary(settings: Settings) -> dict[str, Any]:
    keys = (
        "retrieval_mode",
        "answer_sources",
        "answer_neighbors",
        "answer_context_words",
        "refusal_threshold",
        "citation_threshold",
        "llm_model_path",
        "llm_threads",
        "llm_max_tokens",
        "llm_context_tokens",
        "today",
    )
    return {k: str(getattr(settings, k)) for k in keys}


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_answers", description=__doc__)
    parser.add_argument("--dataset", choices=tuple(ROOTS), default="contoso")
    parser.add_argument(
        "--generator",
        action="append",
        choices=GENERATORS,
        help="generator to run (repeatable; default: extractive then local)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="answerable questions, evenly spread"
    )
    parser.add_argument(
        "--unanswerable-limit", type=int, default=None, help="unanswerable questions, spread"
    )
    parser.add_argument(
        "--type",
        action="append",
        default=[],
        dest="types",
        metavar="TYPE",
        help="only questions of this type (repeatable; golden-format sets: single_fact, "
        "procedural, multi_doc, prior_project, stale, restricted, superseded, unanswerable)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="default: data/bench/answers-<dataset>.json"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="a data folder to keep and reuse (default: a fresh temporary folder)",
    )
    return parser.parse_args(argv)


def bench(args: argparse.Namespace, workdir: Path, out: Path) -> dict[str, Any]:
    items = select_items(args.dataset, args.limit, args.unanswerable_limit, args.types)
    if not items:
        sys.exit(f"--type {', '.join(args.types)}: no question of {args.dataset} has that type")
    settings, parts = prepare(args.dataset, workdir / args.dataset)
    result: dict[str, Any] = {
        "dataset": args.dataset,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "settings": settings_summary(settings),
        "questions": {
            "answerable": sum(i.answerable for i in items),
            "unanswerable": sum(not i.answerable for i in items),
        },
        "ingest": parts.ingest,
        "generators": {},
    }
    runs: list[Run] = []
    try:
        for name in args.generator or GENERATORS:
            runs.append(run_generator(name, settings, parts, items, result, out))
    except KeyboardInterrupt:
        print("interrupted: keeping what is done", file=sys.stderr, flush=True)
        for section in result["generators"].values():
            if section["status"] != "done":
                section["status"] = "interrupted"
        result["interrupted"] = True
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_atomic(out, result)
    for name, section in result["generators"].items():
        if section["aggregates"]:
            label = "whole set, " if section.get(REPORT_AGGREGATES) else ""
            print_table(f"{name} ({label}{section['status']})", args.dataset, section["aggregates"])
        if section.get(REPORT_AGGREGATES):
            title = f"{name} (report part, {section['status']})"
            print_table(title, args.dataset, section[REPORT_AGGREGATES])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    configure_runtime()
    os.environ.setdefault("KB_TODAY", GOLDEN_TODAY)
    args = parse_args(argv)
    out = args.out or REPO / "data" / "bench" / f"answers-{args.dataset}.json"
    started = time.perf_counter()
    with data_folder(args.data_dir, "kb-answers-") as folder:
        bench(args, folder, out)
    print(f"run took {time.perf_counter() - started:.0f} s; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
