"""PDF parsing speed and quality, in one run on one machine state (`python -m evals.bench_pdf`).

Every PDF under the roots (default: contoso_hr's 6 PDFs, the look-alike reports and the PDFs of
corpus/) is read by each parser in turn, interleaved over `--rounds` rounds; the fastest round of
each is reported (the two cores are shared, and a slower round measures the neighbours):

- `pypdf`: page text as LlamaIndex's PDFReader reads it (evals/benchkit.py `read_pdf_pages`),
  the reader of the plain LlamaIndex pipeline of the design notes;
- `pdfium`: our parser (`ingest.parsing.parse`: PDFium lines, layout into blocks, glued-word
  repair);
- `pdfium, N processes`: the same over a process pool of N workers (pool start included), to
  see what parsing in worker processes could give;
- `unstructured`: our parser before issue 12, `partition_pdf(strategy="fast")` (pdfminer) into
  blocks as `ingest.parsing.elements_to_blocks` makes them, with the glued-word repair.

Imports and one call per parser are done before any timing. Quality (evals/pdf_quality.py) is
measured on the blocks of the last round: against pypdf's text (words found both ways, glued
words, blocks on the page they name, pages with text), and, for corpus/ PDFs, against the
Markdown they are built from (scripts/corpus_sources/): headings, list items and table rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from evals.benchkit import (
    CONTOSO,
    REPO,
    Column,
    Span,
    clock,
    configure_runtime,
    format_table,
    machine,
    write_json,
)
from evals.pdf_quality import Tally, against_pypdf, against_source
from ingest import wordglue
from ingest.blocks import Block
from ingest.metadata import split_front_matter
from ingest.parsing import elements_to_blocks, parse

DEFAULT_ROOTS = (str(CONTOSO / "docs"), "evals/datasets/lookalike/docs", "corpus")
SOURCES = REPO / "scripts" / "corpus_sources"  # the Markdown corpus/ PDFs are built from
DEFAULT_OUT = REPO / "data" / "bench" / "pdf.json"
Parser = Callable[[Sequence[Path]], list[list[Block]]]


# -- parsers: each reads a list of files into blocks (pypdf: one text block per page) ---------


def read_pypdf(files: Sequence[Path]) -> list[list[Block]]:
    from evals.benchkit import read_pdf_pages

    return [
        [Block(doc.text, "text", 0, doc.metadata["page"]) for doc in read_pdf_pages([path])]
        for path in files
    ]


def read_pdfium(files: Sequence[Path]) -> list[list[Block]]:
    return [parse(f, "pdf") for f in files]


def _parse_pdf(path: Path) -> list[Block]:
    return parse(path, "pdf")


def pool_reader(workers: int) -> Parser:
    def read(files: Sequence[Path]) -> list[list[Block]]:
        with ProcessPoolExecutor(workers, mp_context=get_context("forkserver")) as pool:
            return list(pool.map(_parse_pdf, files))

    return read


def read_unstructured(files: Sequence[Path]) -> list[list[Block]]:
    from unstructured.partition.pdf import partition_pdf

    out = []
    for path in files:
        elements = partition_pdf(filename=str(path), strategy="fast", languages=["eng"])
        blocks = elements_to_blocks(list(elements))
        vocab = wordglue.vocabulary(b.text for b in blocks)
        out.append([replace(b, text=wordglue.repair(b.text, vocab)) for b in blocks])
    return out


# -- runs -------------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    read: Parser
    spans: list[Span] = field(default_factory=list)
    blocks: list[list[Block]] = field(default_factory=list)

    @property
    def best(self) -> Span:
        return min(self.spans, key=lambda s: s.wall)


def pdf_files(roots: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        if not root.is_dir():
            print(f"note: skipping {root}: not a folder", file=sys.stderr)
            continue
        files += sorted(p for p in root.rglob("*") if p.suffix.lower() == ".pdf")
    return files


def time_runs(runs: Sequence[Run], files: Sequence[Path], rounds: int) -> None:
    for run in runs:  # imports, models and caches a first call loads
        run.read(files[:1])
    for number in range(1, rounds + 1):
        for run in runs:
            print(f"round {number}: {run.name} ...", file=sys.stderr, flush=True)
            with clock() as elapsed:
                run.blocks = run.read(files)
            run.spans.append(elapsed())


def source_blocks(path: Path) -> list[Block] | None:
    """The blocks of the Markdown a corpus/ PDF is built from, or None for another PDF."""
    try:
        rel = path.resolve().relative_to(REPO / "corpus")
    except ValueError:
        return None
    source = (SOURCES / rel).with_suffix(".md")
    if not source.exists():
        return None
    _, body = split_front_matter(source.read_text(encoding="utf-8"))
    return parse(source, "markdown", body)


def quality(run: Run, reference: Run, files: Sequence[Path]) -> dict[str, Any]:
    tally = Tally.empty()
    for path, blocks, pages in zip(files, run.blocks, reference.blocks, strict=True):
        tally.add(against_pypdf(blocks, [b.text for b in pages]))
        source = source_blocks(path)
        if source is not None:
            tally.add(against_source(blocks, source))
    c = tally.counts
    return {
        "pypdf_words_found": tally.share("reference_found", "reference_words"),
        "words_in_pypdf": tally.share("our_found", "our_words"),
        "glued_words": c["glued"],
        "words": c["our_words"],
        "blocks_on_their_page": tally.share("blocks_on_their_page", "blocks_checked"),
        "blocks_without_page": c["blocks_without_page"],
        "pages_with_text": c["pages_with_text"],
        "pages_with_text_pypdf": c["pages_with_text_reference"],
        "blocks": {k.removeprefix("kind_"): n for k, n in sorted(c.items()) if k[:5] == "kind_"},
        "source_headings_found": tally.share("source_headings_found", "source_headings"),
        "headings_in_source": tally.share("our_headings_in_source", "our_headings"),
        "source_list_items_found": tally.share("source_items_found", "source_items"),
        "source_table_rows_found": tally.share("source_rows_found", "source_rows"),
        "source_counts": {
            k: c[k] for k in ("source_headings", "source_items", "source_rows", "our_headings")
        },
    }


def speed(run: Run, pages: int, reference: Run) -> dict[str, Any]:
    """Wall and CPU figures of the fastest round. CPU seconds are this process's: a pool's
    workers are not counted, so the pool variant has wall figures only."""
    best, pooled = run.best, run.name.endswith("processes")
    cpu = {
        "cpu_seconds": None if pooled else round(best.cpu, 3),
        "pages_per_cpu_s": None if pooled else round(pages / best.cpu, 1),
        "x_pypdf_cpu": None if pooled else round(reference.best.cpu / best.cpu, 2),
    }
    return {
        "seconds": round(best.wall, 3),
        "rounds_seconds": [round(s.wall, 3) for s in run.spans],
        "pages_per_s": round(pages / best.wall, 1),
        "x_pypdf": round(reference.best.wall / best.wall, 2),
        **cpu,
    }


# -- output -----------------------------------------------------------------------------------

SPEED_COLUMNS = (
    ("seconds", "seconds"),
    ("pages_per_s", "pages/s"),
    ("x_pypdf", "x pypdf"),
    ("cpu_seconds", "cpu s"),
    ("pages_per_cpu_s", "pages/cpu s"),
    ("x_pypdf_cpu", "x pypdf cpu"),
)
QUALITY_COLUMNS = (
    ("pypdf_words_found", "pypdf words"),
    ("words_in_pypdf", "in pypdf"),
    ("glued_words", "glued"),
    ("blocks_on_their_page", "on page"),
    ("source_headings_found", "src heads"),
    ("headings_in_source", "heads ok"),
    ("source_list_items_found", "src items"),
    ("source_table_rows_found", "src rows"),
)


def print_tables(result: dict[str, Any]) -> None:
    runs = result["runs"]
    columns = [Column("parser", 24, "<"), *(Column(t, 12) for _, t in SPEED_COLUMNS)]
    rows = [[name, *(r["speed"][k] for k, _ in SPEED_COLUMNS)] for name, r in runs.items()]
    print(
        f"\n{result['files']} PDFs, {result['pages']} pages (fastest of {result['rounds']} rounds)"
    )
    print("\n".join(format_table(columns, rows)))
    columns = [Column("parser", 24, "<"), *(Column(t, 11) for _, t in QUALITY_COLUMNS)]
    rows = [
        [name, *(r["quality"].get(k) for k, _ in QUALITY_COLUMNS)]
        for name, r in runs.items()
        if "quality" in r
    ]
    print()
    print("\n".join(format_table(columns, rows)))
    print(
        "cpu s: this process's CPU seconds (not a pool's workers); the two cores are shared, so\n"
        "CPU figures tell a real change from the neighbours' load\n"
        "pypdf words: share of pypdf's words the blocks hold; in pypdf: share of the blocks'\n"
        "words pypdf has; on page: blocks whose words are on the page they name; src: corpus/\n"
        "PDFs against their Markdown (headings found, headings that are real, items, rows)"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evals.bench_pdf", description=__doc__)
    parser.add_argument(
        "--roots",
        nargs="+",
        default=list(DEFAULT_ROOTS),
        help="folders whose PDFs to read; relative paths are resolved against the repository",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds per parser (best kept)")
    parser.add_argument("--workers", type=int, default=2, help="processes of the pool variant")
    parser.add_argument("--skip-unstructured", action="store_true", help="skip the old parser")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    return parser.parse_args(argv)


def bench(files: Sequence[Path], args: argparse.Namespace) -> dict[str, Any]:
    reference = Run("pypdf", read_pypdf)
    runs = [reference, Run("pdfium", read_pdfium)]
    if args.workers > 1:
        runs.append(Run(f"pdfium, {args.workers} processes", pool_reader(args.workers)))
    if not args.skip_unstructured:
        runs.append(Run("unstructured (before)", read_unstructured))
    time_runs(runs, files, args.rounds)
    pages = sum(len(b) for b in reference.blocks)
    out: dict[str, Any] = {}
    for run in runs:
        out[run.name] = {"speed": speed(run, pages, reference)}
        if run is not reference and "processes" not in run.name:
            out[run.name]["quality"] = quality(run, reference, files)
    return {"files": len(files), "pages": pages, "rounds": args.rounds, "runs": out}


def main(argv: Sequence[str] | None = None) -> int:
    configure_runtime()
    args = parse_args(argv)
    roots = [(REPO / r).resolve() for r in args.roots]
    files = pdf_files(roots)
    if not files:
        sys.exit("no PDFs under the roots given")
    started = dt.datetime.now(dt.UTC)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with clock() as elapsed:
        result = bench(files, args)
    result = {
        "started_at": started.isoformat(timespec="seconds"),
        "run_seconds": round(elapsed().wall, 1),
        "roots": [str(r) for r in roots],
        "machine": {**machine(), "load_average_at_start": load_before},
        **result,
    }
    write_json(args.out, result)
    print_tables(result)
    print(f"run took {result['run_seconds']} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
