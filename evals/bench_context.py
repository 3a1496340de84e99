"""What answers are grounded on, per question type, without running a model
(`python -m evals.bench_context`).

corpus/ is copied into a data folder and ingested (unchanged documents are skipped when the
folder is reused); the assistant is built as the app builds it (api/assembly.py), and every
question of the golden and employee sets goes through `Assistant.prepare()` as its asker.
For each question: key-fact recall in the sources' text and in what the prompted model reads
(the user message of `PromptedGenerator.messages()`, built only when the local model file
exists; it is never loaded), expected documents among the sources, distinct documents,
context size, prepare() time, and whether the refusal gate would refuse it. Each set is also
checked against the parsed documents (ids exist, key facts are in the expected documents'
text, stale labels hold). The metrics are in evals/context_metrics.py. Takes about a minute on
a reused data folder (two cores).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from api.assembly import build_answer_embedder, build_assistant, build_generator, build_store
from api.settings import Settings
from assistant.generators import PromptedGenerator
from assistant.service import Assistant
from evals.bench_answers import (
    GOLDEN_TODAY,
    conversation,
    prepare,
    settings_summary,
    write_atomic,
)
from evals.benchkit import REPO, Column, configure_runtime, data_folder, format_table, machine
from evals.context_metrics import (
    ContextRow,
    by_type,
    score_context,
    summarize,
    user_message,
    without_question,
)
from evals.golden import DATASETS, GoldenQuestion, Part, dataset_problems, load_dataset, split_parts
from index.filters import Principal
from index.store import ChromaStore

ALL = "all"  # the whole set; golden figures are also given for its report part


def corpus_texts(store: ChromaStore, today: dt.date) -> tuple[dict[str, str], set[str]]:
    """Each stored document's parsed text (its chunks joined) and the ids of stale ones."""
    texts, stale = {}, set()
    for record in store.documents():
        chunks = store.document_chunks(record.doc_id)
        texts[record.doc_id] = "\n".join(text for _, text, _ in chunks)
        if record.meta.is_stale(today):
            stale.add(record.doc_id)
    return texts, stale


def prompted_generator(settings: Settings, assistant_embedder: Any) -> PromptedGenerator | None:
    """The local model's prompt builder when its file exists (the model is not loaded)."""
    if not settings.llm_model_path.is_file():
        return None
    generator = build_generator(settings, assistant_embedder, "local")
    return generator if isinstance(generator, PromptedGenerator) else None


def measure(
    q: GoldenQuestion,
    assistant: Assistant,
    prompted: PromptedGenerator | None,
    answering: Assistant,
) -> ContextRow:
    history = conversation(answering, q.history, Principal.of(*q.principal_groups))
    started = time.perf_counter()
    context = assistant.prepare(
        q.question, principal=Principal.of(*q.principal_groups), history=history
    )
    prepare_ms = (time.perf_counter() - started) * 1000
    prompt = None
    if prompted is not None:
        message = user_message(prompted.messages(context.standalone, context.sources))
        prompt = without_question(message, context.standalone)
    return score_context(
        key=q.id,
        group=q.type.value,
        facts=q.key_facts,
        expected=q.expected_docs,
        forbidden=q.forbidden_docs,
        source_docs=[s.doc_id for s in context.sources],
        context="\n".join(s.text for s in context.sources),
        prompt=prompt,
        top=context.top,
        threshold=assistant.options.refusal_threshold,
        prepare_ms=prepare_ms,
        must_warn_stale=q.must_warn_stale,
        stale_source=any(s.stale for s in context.sources),
        asked=context.standalone,
    )


def parts_of(name: str, questions: Sequence[GoldenQuestion]) -> dict[str, set[str]]:
    """Labelled subsets to report: the whole set, and for the golden set its report part
    (the calibration part chose the refusal thresholds)."""
    out = {ALL: {q.id for q in questions}}
    if name == "golden":
        split = split_parts(questions)
        out[Part.REPORT.value] = {qid for qid, part in split.items() if part is Part.REPORT}
    return out


def aggregate(rows: Sequence[ContextRow], ids: set[str]) -> dict[str, Any]:
    chosen = [r for r in rows if r.key in ids]
    return {"overall": summarize(chosen), "per_type": by_type(chosen)}


# -- output -----------------------------------------------------------------------------------

COLUMNS = [
    Column("type", 15, "<"),
    Column("n", 4),
    Column("facts ctx", 10),
    Column("facts prompt", 13),
    Column("doc recall", 11),
    Column("docs", 6),
    Column("ctx words", 10),
    Column("~prompt tok", 12),
    Column("gated", 7),
    Column("p50 ms", 8),
]


def table_row(name: str, s: dict[str, Any]) -> list[Any]:
    return [
        name,
        s["answerable"],
        s["fact_recall_context"],
        s["fact_recall_prompt"],
        s["doc_recall"],
        s["distinct_docs"],
        s["context_words"],
        s["prompt_tokens"],
        s["gated_answerable"],
        s["prepare_ms"]["p50"],
    ]


def print_part(title: str, agg: dict[str, Any]) -> None:
    overall = agg["overall"]
    rows = [table_row(t, s) for t, s in agg["per_type"].items() if s["answerable"]]
    lines = ["", f"== {title} ==", *format_table(COLUMNS, [*rows, table_row(ALL, overall)])]
    timing = overall["prepare_ms"]
    lines.append(
        f"prepare() p50 / p95: {timing['p50']} / {timing['p95']} ms; gated: answerable "
        f"{overall['gated_answerable']}, unanswerable {overall['gated_unanswerable']} "
        f"(of {overall['unanswerable']}); forbidden documents in a context: "
        f"{overall['forbidden_in_context']}; stale source present where a warning is due: "
        f"{overall['stale_source_when_must_warn']}"
    )
    print("\n".join(lines), flush=True)


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_context", description=__doc__)
    parser.add_argument(
        "--dataset",
        action="append",
        choices=tuple(DATASETS),
        help="question set (repeatable; default: all of them)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "data" / "bench" / "context.json")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="a data folder to keep and reuse (default: a fresh temporary folder)",
    )
    return parser.parse_args(argv)


def bench(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    settings, parts = prepare("golden", workdir)  # corpus/, which every set is asked over
    embedder = build_answer_embedder(settings, parts.embedder)
    prompted = prompted_generator(settings, embedder)
    assistant = build_assistant(
        settings, parts.retriever, embedder, prompted or build_generator(settings, embedder)
    )
    # Earlier turns of a conversation are answered without a model (the rewrite of a
    # follow-up reads only their opening words: assistant/prompt.py).
    answering = build_assistant(
        settings, parts.retriever, embedder, build_generator(settings, embedder, "extractive")
    )
    texts, stale = corpus_texts(build_store(settings), settings.today_date())
    assistant.prepare("warm up", principal=Principal(admin=True))  # first query loads lazily
    result: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "settings": settings_summary(settings),
        "prompt_measured": prompted is not None,
        "ingest": parts.ingest,
        "sets": {},
    }
    for name in args.dataset or tuple(DATASETS):
        questions = load_dataset(name)
        print(f"{name}: {len(questions)} questions ...", file=sys.stderr, flush=True)
        rows = [measure(q, assistant, prompted, answering) for q in questions]
        result["sets"][name] = {
            "problems": dataset_problems(questions, texts, stale),
            "parts": {p: aggregate(rows, ids) for p, ids in parts_of(name, questions).items()},
            "rows": [r.to_json() for r in rows],
        }
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_atomic(args.out, result)
    if prompted is None:
        print(f"note: no local model file at {settings.llm_model_path}: prompt figures empty")
    for name, section in result["sets"].items():
        for part, agg in section["parts"].items():
            print_part(f"{name} ({part})", agg)
        for problem in section["problems"]:
            print(f"  dataset problem: {problem}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    configure_runtime()
    os.environ.setdefault("KB_TODAY", GOLDEN_TODAY)
    args = parse_args(argv)
    started = time.perf_counter()
    with data_folder(args.data_dir, "kb-context-") as folder:
        result = bench(args, folder)
    print(f"run took {time.perf_counter() - started:.0f} s; results in {args.out}")
    return 1 if any(s["problems"] for s in result["sets"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
