"""The `kb` command line: ingest, search, ask, list documents, review them (mark reviewed,
the review queue, the audit log), manage API keys, check and repair the store, run evaluation
suites (`kb eval`: evals/suite.py), serve."""

from __future__ import annotations

import csv
import datetime as dt
import getpass
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.assembly import (
    build_answer_embedder,
    build_assistant,
    build_audit_log,
    build_embedder,
    build_gap_clusters,
    build_generator,
    build_ingest_lock,
    build_ingester,
    build_kb_health,
    build_projects,
    build_retriever,
    build_signoff,
    build_store,
    configure_runtime,
)
from api.keys import KeyInfo, KeyStore, Role
from api.settings import Settings
from api.streaming import shown
from api.uploads import exclusive
from assistant.audit import AuditAction, AuditEntry
from assistant.conflicts import DEFAULT_DAYS as CONFLICT_DAYS
from assistant.conflicts import ConflictFinder
from assistant.gap_clusters import GapClusterReport
from assistant.kb_health import DEFAULT_DAYS, DEFAULT_GAPS, HealthReport
from assistant.projects import ProjectMatches, ProjectQuery
from assistant.querylog import Asker, QueryLog
from assistant.review import QUEUE_CSV_COLUMNS, OwnerQueue, queue_from_log, queue_rows
from assistant.service import Answer, Found, Token
from assistant.signoff import Reviewer, ReviewResult
from index.embedding import Embedder
from index.errors import InvalidRequestError, KBError
from index.facets import FacetCount
from index.filters import Principal, SearchFilters
from index.hits import Hit
from index.integrity import CheckReport, check
from index.rebuild import check_and_repair
from index.store import ChromaStore
from ingest.defaults import parse_run_defaults
from ingest.sync import IngestReport

app = typer.Typer(
    help="CoE knowledge base: ingest documents, search them, serve the API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _settings() -> Settings:
    settings = Settings()
    configure_runtime(settings)
    return settings


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _cli_actor() -> str:
    """Who the audit log names for a command: `cli:<login name>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in a bare container
        return "cli:unknown"


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="Folder of documents to sync into the store.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    default: Annotated[
        list[str] | None,
        typer.Option(
            "--default",
            metavar="KEY=VALUE",
            help="Metadata default for this run (repeatable), below every kb-defaults.yaml: "
            "--default owner='Data team' --default access=[finance].",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Fail files missing doc_type, department or owner instead of ingesting them "
            "with neutral values (also KB_INGEST_STRICT).",
        ),
    ] = False,
) -> None:
    """Sync a folder into the store: add new, update changed, remove deleted documents.
    Exits 1 if any file failed (the others are ingested all the same)."""
    run_defaults = parse_run_defaults(default or [])
    settings = _settings()
    store = build_store(settings)
    ingester = build_ingester(settings, store, build_embedder(settings))
    show_bar = not as_json and err.is_terminal
    with Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
        disable=not show_bar,
    ) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, rel: str) -> None:
            bar.update(task, completed=done - 1, total=total, description=rel)

        with exclusive(build_ingest_lock(settings)):
            report = ingester.sync(
                path, progress=progress, defaults=run_defaults, strict=True if strict else None
            )
    build_audit_log(settings).append(
        _cli_actor(), AuditAction.INGEST, str(path.resolve()), report.summary()
    )
    if as_json:
        _print_json(report.to_json())
    else:
        _print_report(report)
    if report.failed:
        raise typer.Exit(1)


def _print_report(report: IngestReport, console: Console = out) -> None:
    warned = f", warnings {len(report.warnings)}" if report.warnings else ""
    console.print(
        f"added {len(report.added)}, updated {len(report.updated)}, "
        f"unchanged {len(report.unchanged)}, removed {len(report.removed)}, "
        f"failed {len(report.failed)}{warned}"
    )
    for warning in report.warnings:
        reason = warning.to_json()["reason"]
        err.print(f"[yellow]warning[/yellow] {warning.path}: {reason}", highlight=False)
    for failure in report.failed:
        err.print(f"[red]failed[/red] {failure.path}: {failure.reason}", highlight=False)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("-k", help="Number of hits.")] = 5,
    department: Annotated[list[str] | None, typer.Option(help="Only these departments.")] = None,
    doc_type: Annotated[list[str] | None, typer.Option("--type", help="Only these types.")] = None,
    status: Annotated[list[str] | None, typer.Option(help="Only these statuses.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Documents with any of these tags.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only this owner.")] = None,
    vendor: Annotated[str | None, typer.Option(help="Only this vendor.")] = None,
    stale: Annotated[
        bool | None, typer.Option("--stale/--current", help="Only stale, or only current.")
    ] = None,
    include_superseded: Annotated[
        bool, typer.Option(help="Also superseded and retired documents.")
    ] = False,
    group: Annotated[
        list[str] | None, typer.Option(help="Search as a member of these groups.")
    ] = None,
    admin: Annotated[bool, typer.Option(help="Search as an administrator (sees all).")] = False,
    neighbors: Annotated[int, typer.Option(help="Attach N neighbouring chunks.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print hits as JSON.")] = False,
) -> None:
    """Ranked passages for a query (hybrid dense + keyword search)."""
    settings = _settings()
    store = build_store(settings)
    filters = SearchFilters.build(
        department=department,
        doc_type=doc_type,
        status=status,
        tags=tag,
        owner=owner,
        vendor=vendor,
        stale=stale,
        include_superseded=include_superseded,
    )
    hits = build_retriever(settings, store, build_embedder(settings)).retrieve(
        query,
        k,
        today=settings.today_date(),
        filters=filters,
        principal=Principal.of(*(group or []), admin=admin),
        neighbors=neighbors,
    )
    if as_json:
        _print_json([h.to_json() for h in hits])
        return
    _print_hits(hits)


def _print_hits(hits: list[Hit]) -> None:
    if not hits:
        out.print("no results")
    for rank, hit in enumerate(hits, start=1):
        where = f"{hit.path}" + (f" p.{hit.page}" if hit.page else "")
        stale = " [yellow](past review date)[/yellow]" if hit.is_stale else ""
        out.print(f"[bold]{rank}. {hit.title}[/bold]{stale}  {hit.score:.3f}  {where}")
        if hit.section:
            out.print(f"   {hit.section}", style="dim", highlight=False)
        snippet = " ".join(hit.text.split())
        out.print(f"   {snippet[:240]}{'...' if len(snippet) > 240 else ''}", highlight=False)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question.")],
    generator: Annotated[
        str | None, typer.Option(help="auto, local, openai or extractive (overrides settings).")
    ] = None,
    group: Annotated[
        list[str] | None, typer.Option(help="Ask as a member of these groups.")
    ] = None,
    admin: Annotated[bool, typer.Option(help="Ask as an administrator (sees all).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
) -> None:
    """A grounded answer with checked citations and review-date warnings."""
    settings = _settings()
    store = build_store(settings)
    embedder = build_answer_embedder(settings, build_embedder(settings))
    assistant = build_assistant(
        settings,
        build_retriever(settings, store, embedder),
        embedder,
        build_generator(settings, embedder, generator),
    )
    principal = Principal.of(*(group or []), admin=admin)
    started = time.perf_counter()
    if as_json:
        final = assistant.ask(question, principal=principal)
        _print_json(final.to_json())
    else:
        finals: list[Answer] = []  # the one final answer, kept as it passes
        streamed: list[str] = []
        for event in shown(assistant.stream(question, principal=principal), finals.append):
            if isinstance(event, Found):
                titles = "; ".join(f"[{c.n}] {c.title}" for c in event.sources)
                out.print(f"Reading {titles}", style="dim", highlight=False, markup=False)
            elif isinstance(event, Token):
                streamed.append(event.text)
                out.print(event.text, end="", highlight=False, markup=False)
        final = finals[0]
        _print_answer(final, "".join(streamed))
    log = QueryLog(settings.query_log_path)
    asker = Asker("cli", tuple(sorted(principal.groups)), principal.admin)
    log.record(final, asker, route="cli", latency_ms=(time.perf_counter() - started) * 1000)
    log.close()


def _print_answer(answer: Answer, streamed: str = "") -> None:
    """The checked answer under a rule, unless it is what was just streamed word for word
    (then only its sources follow): checking drops unsupported sentences and corrects
    citation numbers, and only then is the answer worth printing twice."""
    out.print()
    if " ".join(answer.answer.split()) == " ".join(streamed.split()):
        out.rule("sources")
    else:
        out.rule("checked answer" if streamed.strip() else "")
        out.print(answer.answer, highlight=False, markup=False)
    for c in answer.citations:
        where = c.path + (f" p.{c.page}" if c.page else "")
        stale = " [yellow]past review date[/yellow]" if c.stale else ""
        out.print(f"[{c.n}] {c.title} ({where}){stale}", highlight=False)
    for warning in answer.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if answer.unsupported:
        err.print(f"[dim]{len(answer.unsupported)} unsupported sentence(s) removed[/dim]")


@app.command()
def docs(
    as_json: Annotated[bool, typer.Option("--json", help="Print the registry as JSON.")] = False,
) -> None:
    """List the documents in the store."""
    settings = _settings()
    today = settings.today_date()
    records = sorted(build_store(settings).documents(), key=lambda r: r.doc_id)
    if as_json:
        _print_json(
            [
                {
                    "doc_id": r.doc_id,
                    "path": r.path,
                    "chunks": r.chunk_count,
                    "stale": r.meta.is_stale(today),
                    "review_date": str(r.meta.review_date) if r.meta.review_date else None,
                    "ingested_at": r.ingested_at.isoformat(),
                    **r.meta.model_dump(mode="json", exclude={"id"}),
                }
                for r in records
            ]
        )
        return
    table = Table("id", "type", "department", "owner", "review by", "chunks", "path")
    for r in records:
        review = str(r.meta.review_date or "never")
        if r.meta.is_stale(today):
            review = f"[yellow]{review} (stale)[/yellow]"
        table.add_row(
            r.doc_id,
            r.meta.doc_type,
            r.meta.department,
            r.meta.owner,
            review,
            str(r.chunk_count),
            r.path,
        )
    out.print(table)
    out.print(f"{len(records)} documents")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from api.app import create_app

    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]  # validated: dev mode, loopback
    configure_runtime(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )


@app.command()
def gaps(
    limit: Annotated[
        int, typer.Option(help="Show at most this many questions (with --clusters: clusters).")
    ] = 30,
    clusters: Annotated[
        bool,
        typer.Option(
            "--clusters",
            help="Group refused and low-confidence questions by topic: a backlog of what to "
            "write, largest first.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """The knowledge-gap report: questions the base could not answer, most asked first."""
    settings = _settings()
    query_log = QueryLog(settings.query_log_path)
    if clusters:
        store = build_store(settings)
        service = build_gap_clusters(settings, store, query_log, build_embedder(settings))
        report = service.report(Principal.of(admin=True), limit)
        if as_json:
            _print_json(asdict(report))
        else:
            _print_gap_clusters(report)
        return
    found = query_log.gaps(limit)
    if as_json:
        _print_json([asdict(g) for g in found])
        return
    table = Table("asked", "last asked", "question", "why", "nearby")
    for gap in found:
        table.add_row(
            str(gap.times_asked),
            gap.last_asked,
            escape(gap.question),  # a question may hold brackets that read as markup
            "; ".join(gap.reasons),
            ", ".join(gap.nearby),
        )
    out.print(table)


def _print_gap_clusters(report: GapClusterReport) -> None:
    table = Table("asked", "refused", "weak", "askers", "topic", "departments", "nearest")
    for cluster in report.clusters:
        table.add_row(
            str(cluster.questions),
            str(cluster.refused),
            str(cluster.low_confidence),
            str(cluster.askers),
            escape("\n".join([cluster.label, *(f"- {q}" for q in cluster.examples)])),
            ", ".join(f"{d.department} {d.questions}" for d in cluster.departments),
            escape("\n".join(f"{d.doc_id} ({d.title})" for d in cluster.nearest)),
        )
    out.print(table)
    out.print(
        f"{report.answers} answers: refused, or answered on a source under "
        f"{report.low_confidence_below} relevance"
        + (" (only the latest were read)" if report.truncated else ""),
        highlight=False,
        markup=False,
    )


@app.command()
def review(
    doc_id: Annotated[str, typer.Argument(help="The document's id (`kb docs` lists them).")],
    until: Annotated[
        dt.datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            metavar="YYYY-MM-DD",
            help="Due again after this date (in the future). Default: today + the document's "
            "review interval.",
        ),
    ] = None,
    note: Annotated[str | None, typer.Option(help="What was checked, for the audit log.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Mark a document reviewed: it stops being stale at once, and stays reviewed through
    re-ingests until its file changes. Recorded in the audit log as cli:<user>."""
    settings = _settings()
    store = build_store(settings)
    signoff = build_signoff(settings, store, build_audit_log(settings))
    who = _cli_actor()
    reviewer = Reviewer(who=who, name=who, principal=Principal.of(admin=True))
    try:
        with exclusive(build_ingest_lock(settings)):  # an ingest must not restamp it
            result = signoff.mark_reviewed(
                doc_id, reviewer, until=until.date() if until else None, note=note
            )
    except InvalidRequestError as exc:  # name the options this command has
        option = {"review_date": "--until", "note": "--note"}.get(exc.parameter, exc.parameter)
        raise InvalidRequestError(option, exc.reason) from None
    if as_json:
        _print_json(asdict(result))
        return
    _print_review(result)


def _print_review(result: ReviewResult) -> None:
    before = str(result.previous_review_date or "never")
    out.print(
        f"{result.doc_id} ({result.title}) reviewed on {result.last_reviewed}: due again after "
        f"{result.review_date} (was {before}); owner {result.owner}",
        highlight=False,
    )
    if result.note:
        out.print(f"note: {result.note}", highlight=False)


@app.command()
def stale(
    csv_file: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            metavar="FILE",
            help="Also write the queue as CSV, one row per document (for owners' reminders).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the queue as JSON.")] = False,
) -> None:
    """The review queue: documents past their review date, and documents without an owner,
    by owner, most urgent first (days overdue x (1 + recent citations), plus "outdated"
    thumbs down)."""
    settings = _settings()
    records = build_store(settings).documents()
    log = QueryLog(settings.query_log_path)
    queue = queue_from_log(records, settings.today_date(), log)
    log.close()
    if csv_file is not None:
        with csv_file.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=QUEUE_CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(queue_rows(queue))
    if as_json:
        _print_json([asdict(q) for q in queue])
        return
    _print_queue(queue)
    if csv_file is not None:
        err.print(f"wrote {csv_file}", highlight=False)


def _print_queue(queue: list[OwnerQueue]) -> None:
    if not queue:
        out.print("the review queue is empty: every document is within its review date")
        return
    for owner in queue:
        out.print(f"[bold]{owner.owner}[/bold] ({len(owner.documents)})", highlight=False)
        table = Table("urgency", "id", "review by", "overdue", "cited", "down", "path")
        for d in owner.documents:
            overdue = f"{d.days_overdue} d" if d.days_overdue else "needs an owner"
            table.add_row(
                str(d.urgency),
                d.doc_id,
                str(d.review_date or "never"),
                overdue,
                str(d.cited),
                str(d.thumbs_down),
                d.path,
            )
        out.print(table)
    count = sum(len(q.documents) for q in queue)
    out.print(f"{count} documents to review, {len(queue)} owners")


@app.command()
def audit(
    since: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="Only from this day."),
    ] = None,
    action: Annotated[AuditAction | None, typer.Option(help="Only this action.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the entries as JSON.")] = False,
) -> None:
    """The audit log: reviews, uploads, syncs, ingest runs, key changes; newest first."""
    entries = build_audit_log(_settings()).read(
        since=since.date() if since else None, action=action, limit=limit
    )
    if as_json:
        _print_json([e.to_json() for e in entries])
        return
    _print_audit(entries)


def _print_audit(entries: list[AuditEntry]) -> None:
    table = Table("when", "who", "action", "target", "details")
    for e in entries:
        details = ", ".join(f"{k}={v}" for k, v in e.details.items() if v not in (None, [], ""))
        table.add_row(e.when, e.who, e.action.value, e.target, details)
    out.print(table)
    out.print(f"{len(entries)} entries")


keys_app = typer.Typer(help="Manage API keys: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Whose key this is, e.g. 'finance spoke bot'.")],
    role: Annotated[
        Role, typer.Option(help="reader: search, ask, read; spoke: + review queue; admin: all.")
    ] = Role.READER,
    group: Annotated[
        list[str] | None, typer.Option(help="Access group the key reads (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the key as JSON.")] = False,
) -> None:
    """Create an API key. The key is printed once: only its hash is stored."""
    settings = _settings()
    store = KeyStore(settings.keys_path)
    key = store.create(name, role, group or [])
    info = next(k for k in store.list() if key.startswith(f"kb_{k.key_id}_"))
    details = {"name": info.name, "role": info.role.value, "groups": list(info.groups)}
    build_audit_log(settings).append(_cli_actor(), AuditAction.KEY_CREATE, info.key_id, details)
    if as_json:
        _print_json({"key": key, **_key_json(info)})
        return
    out.print(key, highlight=False)
    err.print(
        f"key {info.key_id} ({info.role.value}; groups: {', '.join(info.groups) or 'none'}) "
        "created. Keep it secret: it cannot be shown again.",
        highlight=False,
    )


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as JSON.")] = False,
) -> None:
    """List API keys (never the keys themselves)."""
    keys = KeyStore(_settings().keys_path).list()
    if as_json:
        _print_json([_key_json(k) for k in keys])
        return
    table = Table("id", "name", "role", "groups", "created", "last used", "state")
    for k in keys:
        state = "active" if k.active else f"[red]revoked {k.revoked_at}[/red]"
        table.add_row(
            k.key_id,
            k.name,
            k.role.value,
            ", ".join(k.groups),
            k.created_at,
            k.last_used_at or "never",
            state,
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The id `kb keys list` shows.")],
) -> None:
    """Revoke an API key: requests with it get 401 from now on."""
    settings = _settings()
    KeyStore(settings.keys_path).revoke(key_id)
    build_audit_log(settings).append(_cli_actor(), AuditAction.KEY_REVOKE, key_id)
    err.print(f"key {key_id} revoked", highlight=False)


def _key_json(info: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "name": info.name,
        "role": info.role.value,
        "groups": list(info.groups),
        "created_at": info.created_at,
        "last_used_at": info.last_used_at,
        "revoked_at": info.revoked_at,
    }


store_app = typer.Typer(help="Check the Chroma store and repair it.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("check")
def store_check(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Rebuild the chunks index if chunks are unreachable (or a repair was left "
            "unfinished): every record is copied, verified and swapped in; nothing is lost.",
        ),
    ] = False,
    sample: Annotated[
        int | None,
        typer.Option(min=1, help="Query N chunks chosen at random instead of all of them."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Find chunks dense search cannot return (chroma-core/chroma#7758) and chunks the
    registry does not know or misses. Exits 1 if a problem is left."""
    settings = _settings()
    store = build_store(settings)
    if repair:
        with exclusive(build_ingest_lock(settings)):  # no ingest while it rewrites
            report = check_and_repair(store, sample=sample)
    else:
        report = check(store, sample=sample)
    if as_json:
        _print_json(report.to_json())
    else:
        _print_check(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_check(report: CheckReport) -> None:
    out.print(
        f"checked {report.checked} of {report.chunks} chunks, {report.documents} documents "
        f"in {report.seconds:.1f} s",
        highlight=False,
    )
    if report.repaired:
        before = set(report.unreachable)
        fixed = len(before - set(report.still_unreachable))
        done = f"{fixed} of {len(before)} unreachable chunks are reachable again"
        out.print(
            "repaired: the chunks index was rebuilt and swapped in; "
            + (done if before else "the unfinished repair's leftovers are gone"),
            highlight=False,
        )
    for problem in _check_problems(report):
        err.print(problem, highlight=False)
    if report.ok:
        out.print("ok: every chunk checked is reachable, and the registry agrees")


def _check_problems(report: CheckReport) -> list[str]:
    problems = []
    lost = report.still_unreachable if report.repaired else report.unreachable
    if lost:
        problems.append(
            f"[red]{len(lost)} chunk(s) cannot be found by dense search[/red] (their own vector "
            "does not bring them back: chroma-core/chroma#7758)"
            + ("" if report.repaired else ": run `kb store check --repair` (nothing is lost)")
        )
    if report.leftovers:
        problems.append(
            f"[red]an unfinished repair left {', '.join(report.leftovers)}[/red]: "
            "run `kb store check --repair`"
        )
    parts = []
    if len(report.orphans) > report.orphans_removed:
        parts.append(f"{len(report.orphans)} chunk(s) of no registered document version")
    missing = [m["doc_id"] for m in report.missing if m["doc_id"] not in report.requeued]
    if missing:
        parts.append(f"{len(missing)} document(s) missing chunks ({', '.join(missing[:5])})")
    if parts:
        problems.append(
            f"[red]{'; '.join(parts)}[/red]: `kb store check --repair` deletes those chunks "
            "and marks those documents for the next `kb ingest` to rewrite (`--json` lists them)"
        )
    if report.orphans_removed:
        problems.append(f"removed {report.orphans_removed} chunk(s) of no registered version")
    if report.requeued:
        problems.append(
            f"[yellow]{len(report.requeued)} document(s) wait to be rewritten[/yellow] "
            f"({', '.join(report.requeued[:5])}): run `kb ingest` on their folder"
        )
    if report.writing:
        problems.append(
            f"{len(report.writing)} document(s) are being written by an ingest (or one was "
            "interrupted: `kb ingest` completes them)"
        )
    return problems


# `kb eval`: the evaluation suites of evals/ (evals/README.md). Its commands import evals/
# when they run, so the other commands do not load the benchmarks' modules.
eval_app = typer.Typer(
    help="Evaluation suites: datasets, runs over the live configuration, comparisons, gates.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")


@eval_app.command("datasets")
def eval_datasets(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Dataset files to check and count too (.csv, .jsonl, folders)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """The known datasets (and any given), with their questions counted by type. A malformed
    file fails naming the file, the line and the field."""
    from evals.suite_data import known_datasets, resolve, type_counts
    from evals.suite_report import datasets_lines

    found = [(d, d.load()) for d in [*known_datasets(), *(resolve(str(p)) for p in paths or [])]]
    if as_json:
        _print_json(
            [
                {
                    "name": d.name,
                    "path": str(d.path),
                    "format": d.fmt,
                    "documents": str(d.documents) if d.documents else None,
                    "questions": len(qs),
                    "types": type_counts(qs),
                }
                for d, qs in found
            ]
        )
        return
    out.print("\n".join(datasets_lines(found)), highlight=False, markup=False)


@eval_app.command("run")
def eval_run(
    dataset: Annotated[
        str,
        typer.Option(
            help="golden, employee, followups, lookalike, contoso, or a .csv/.jsonl file."
        ),
    ],
    generator: Annotated[
        str | None,
        typer.Option(help="extractive, local, openai or auto (default: KB_GENERATOR)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Change a setting for this run (repeatable): --set answer_sources=8.",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="At most N questions, spread over the question types."),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Run folder (default: KB_DATA_DIR/evals/<dataset>-<time>). Running again "
            "into it resumes: recorded questions are skipped.",
        ),
    ] = None,
    ingest_path: Annotated[
        Path | None,
        typer.Option("--ingest", help="Sync this folder into the store first (as kb ingest)."),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Evaluate an OpenAI-compatible chat completions endpoint (its base URL, "
            "e.g. http://host:8000/v1) instead of our assistant.",
        ),
    ] = None,
    endpoint_key: Annotated[
        str | None,
        typer.Option(help="API key for --endpoint (a Bearer token; runs record a SHA-256 prefix)."),
    ] = None,
    endpoint_model: Annotated[
        str | None, typer.Option(help="Model for --endpoint (default: the first it lists).")
    ] = None,
    llamaindex: Annotated[
        str | None,
        typer.Option(
            metavar="MODULE:FACTORY",
            help="Evaluate the LlamaIndex query engine this factory returns instead of our "
            "assistant (the module is imported from the working folder too).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Answer every question of a dataset with the live configuration (KB_* settings,
    KB_DATA_DIR's store) or one changed by --set, or with another system (--endpoint,
    --llamaindex), and write records.jsonl and summary.json into the run folder. Progress and
    ETA go to stderr; Ctrl-C keeps what is done."""
    from evals.suite import Suite, check_store, header, run_today, with_overrides
    from evals.suite_data import resolve, select
    from evals.suite_report import progress_line, summary_lines
    from evals.systems import Workbench, build_system, choose

    choice = choose(
        endpoint=endpoint,
        key=endpoint_key,
        model=endpoint_model,
        llamaindex=llamaindex,
        generator=generator,
    )
    pairs = [*(set_ or []), *([f"generator={generator}"] if generator else [])]
    settings, overrides = with_overrides(_settings(), pairs)
    chosen = resolve(dataset)
    questions = select(chosen.load(), limit)
    settings, today_from = run_today(settings, chosen)
    store = build_store(settings)
    embedder = build_embedder(settings)
    if ingest_path is not None:
        _ingest_for_eval(settings, store, embedder, ingest_path)
    documents = store.documents()
    check_store(chosen, questions, documents, settings.data_dir)
    system = build_system(choice, Workbench(settings, store, embedder, documents))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = out_dir or settings.data_dir / "evals" / f"{chosen.name}-{stamp}"
    suite = Suite(
        questions,
        system,
        documents,
        folder,
        header(
            chosen,
            questions,
            limit,
            system.generator,
            settings,
            overrides,
            documents,
            today_from,
            system.describe(),
        ),
        progress=lambda p: err.print(progress_line(p), highlight=False, markup=False),
    )
    try:
        summary = suite.run()
    except KeyboardInterrupt:
        err.print(
            f"interrupted: what is done is in {folder}; run the same command to resume",
            highlight=False,
        )
        raise typer.Exit(130) from None
    if as_json:
        _print_json({"folder": str(folder), **summary})
        return
    out.print("\n".join(summary_lines(summary, str(folder))), highlight=False, markup=False)


def _ingest_for_eval(
    settings: Settings, store: ChromaStore, embedder: Embedder, path: Path
) -> None:
    """`kb eval run --ingest`: sync as `kb ingest` does (audited), the report on stderr."""
    report = build_ingester(settings, store, embedder).sync(path)
    build_audit_log(settings).append(
        _cli_actor(), AuditAction.INGEST, str(path.resolve()), report.summary()
    )
    err.print(f"ingest {path}: ", end="", highlight=False)
    _print_report(report, console=err)


@eval_app.command("compare")
def eval_compare(
    run_a: Annotated[Path, typer.Argument(help="The run compared against (e.g. main's).")],
    run_b: Annotated[Path, typer.Argument(help="The run to judge.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Per-metric B - A with paired bootstrap 95% intervals over the questions both runs
    answered, and the questions that flipped."""
    from evals.compare import Run, compare, compare_lines

    result = compare(Run.load(run_a), Run.load(run_b))
    if as_json:
        _print_json(result)
        return
    out.print("\n".join(compare_lines(result)), highlight=False, markup=False)


@eval_app.command("gate")
def eval_gate(
    run: Annotated[Path, typer.Argument(help="The run folder to check.")],
    thresholds: Annotated[
        Path, typer.Option(help="YAML: per metric a min floor, a max ceiling, a max_drop.")
    ],
    baseline: Annotated[
        Path | None, typer.Option(help="The run max_drop is measured against.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check a run against thresholds: exit 1 listing the failed checks, 0 when all pass."""
    from evals.compare import Run, gate, gate_json

    checks = gate(Run.load(run), thresholds, Run.load(baseline) if baseline else None)
    result = gate_json(checks)
    if as_json:
        _print_json(result)
    else:
        for check in checks:
            out.print(check.line(), highlight=False, markup=False)
        failed = [c for c in checks if not c.passed]
        verdict = f"{len(failed)} of {len(checks)} checks failed" if failed else "all passed"
        names = f": {', '.join(f'{c.metric} ({c.rule})' for c in failed)}" if failed else ""
        out.print(f"gate: {verdict}{names}", highlight=False, markup=False)
    if not result["passed"]:
        raise typer.Exit(1)


@eval_app.command("report")
def eval_report(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run folders: the run of interest first, then its baseline, then any others "
            "(the trend chart orders them by start time)."
        ),
    ],
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="The HTML file (default: report.html in the first run)."),
    ] = None,
) -> None:
    """One self-contained HTML page: the run against its baseline (compare's figures), charts
    by question type, over the runs and of latency, and the worst questions."""
    from evals.compare import Run
    from evals.report_html import render

    page = render([Run.load(r) for r in runs])
    target = out_file or runs[0] / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    out.print(f"report written to {target}", highlight=False, markup=False)


@eval_app.command("triage")
def eval_triage(
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="The triage file, appended to (default: KB_DATA_DIR/evals/triage.jsonl).",
        ),
    ] = None,
    since: Annotated[
        dt.datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            metavar="YYYY-MM-DD",
            help="Only thumbs down given on or after this day (UTC).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Thumbs down from the query log as candidate evaluation cases in the golden format, one
    per distinct question, with what the log knows; only questions not yet in the file are
    appended. An analyst completes and adopts them (evals/README.md, "Evaluation suites")."""
    from evals.triage import triage

    settings = _settings()
    target = out_file or settings.eval_runs_dir / "triage.jsonl"
    log = QueryLog(settings.query_log_path)
    try:
        result = triage(log.thumbs_down(since.date() if since else None), target)
    finally:
        log.close()
    if as_json:
        _print_json({"file": str(target), **asdict(result)})
        return
    out.print(
        f"{result.thumbs_down} thumbs down on {result.questions} distinct questions: "
        f"{len(result.added)} new candidate(s) appended to {target}, {result.known} already there",
        highlight=False,
        markup=False,
    )
    for c in result.added:
        why = ", ".join(c["triage"]["reasons"]) or "no reason given"
        out.print(
            f"  {c['id']}  x{c['triage']['count']}  {c['question']}  ({why})",
            highlight=False,
            markup=False,
        )


@app.command()
def projects(
    description: Annotated[
        str | None, typer.Argument(help="The project, described in words (or give --doc).")
    ] = None,
    doc: Annotated[
        str | None, typer.Option("--doc", help="A document id: projects similar to it.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many documents.")] = None,
    department: Annotated[
        list[str] | None, typer.Option(help="Only these departments (repeatable).")
    ] = None,
    exclude_department: Annotated[
        list[str] | None, typer.Option(help="Not these departments (repeatable).")
    ] = None,
    include_own_department: Annotated[
        bool, typer.Option(help="With --doc: also its own department's documents.")
    ] = False,
    group: Annotated[
        list[str] | None, typer.Option(help="Search as a member of these groups.")
    ] = None,
    admin: Annotated[bool, typer.Option(help="Search as an administrator (sees all).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Prior projects: the lessons learned, showcases and vendor evaluations of other
    departments closest to a description or to a document (--doc: itself and, unless
    --include-own-department, its department left out), each with its main lesson."""
    settings = _settings()
    store = build_store(settings)
    embedder = build_answer_embedder(settings, build_embedder(settings))
    finder = build_projects(settings, store, build_retriever(settings, store, embedder), embedder)
    query = ProjectQuery(
        text=description,
        doc_id=doc,
        limit=limit,
        departments=tuple(department or []),
        exclude_departments=tuple(exclude_department or []),
        include_own_department=include_own_department,
    )
    try:
        found = finder.similar(query, Principal.of(*(group or []), admin=admin))
    except InvalidRequestError as exc:  # name the arguments this command has
        option = {"q": "description (or --doc)", "limit": "--limit"}.get(exc.parameter)
        raise InvalidRequestError(option or exc.parameter, exc.reason) from None
    if as_json:
        _print_json(asdict(found))
        return
    _print_projects(found)


def _print_projects(found: ProjectMatches) -> None:
    out.print(found.note, style="dim", highlight=False)
    if not found.projects:
        out.print("no similar projects")
    for rank, p in enumerate(found.projects, start=1):
        facts = ", ".join(str(f) for f in (p.department, p.vendor, p.outcome, p.year) if f)
        stale = " [yellow](past review date)[/yellow]" if p.stale else ""
        similarity = f"{p.similarity:.3f}" if p.similarity is not None else "keywords"
        out.print(
            f"[bold]{rank}. {p.project or p.title}[/bold] ({facts}){stale}  {similarity}",
            highlight=False,
        )
        out.print(f"   {p.doc_id}: {p.title} [{p.doc_type}]", style="dim", highlight=False)
        if p.lesson:
            out.print(f"   {p.lesson}", highlight=False, markup=False)


@app.command()
def health(
    days: Annotated[int, typer.Option(min=1, max=365, help="Usage over the last N days.")] = (
        DEFAULT_DAYS
    ),
    gaps: Annotated[int, typer.Option(min=0, help="At most this many gaps.")] = DEFAULT_GAPS,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Knowledge-base health, over every document (as an admin): documents by department and
    type, stale share against KB_STALE_TARGET, documents without an owner, questions a day,
    refusal and thumbs-down rates, top gaps, latest evaluation scores."""
    settings = _settings()
    log = QueryLog(settings.query_log_path)
    report = build_kb_health(settings, build_store(settings), log).report(
        Principal.of(admin=True), days=days, gaps=gaps
    )
    log.close()
    if as_json:
        _print_json(asdict(report))
        return
    _print_health(report)


def _print_health(report: HealthReport) -> None:
    def counts(values: list[FacetCount]) -> str:
        return ", ".join(f"{c.value} {c.count}" for c in values) or "none"

    out.print(f"[bold]{report.documents} documents[/bold] (review dates as of {report.today})")
    out.print(f"by department: {counts(report.by_department)}", highlight=False)
    out.print(f"by type: {counts(report.by_type)}", highlight=False)
    out.print(f"by status: {counts(report.by_status)}", highlight=False)
    s = report.stale
    share = f"{s.share:.1%}" if s.share is not None else "n/a"
    verdict = "[red]over target[/red]" if s.over_target else "[green]within target[/green]"
    out.print(
        f"stale: {s.stale} of {s.active} active documents ({share}; target {s.target:.0%}) "
        f"{verdict}; never reviewed {s.never_reviewed}",
        highlight=False,
    )
    owners = ", ".join(report.without_owner) or "none"
    out.print(f"without an owner: {len(report.without_owner)} ({owners})", highlight=False)
    _print_usage(report)
    for run in report.evaluations:
        scores = ", ".join(f"{k} {v:g}" for k, v in run.scores.items())
        out.print(
            f"eval {run.dataset} ({run.status}, {run.written_at}, {run.generator}): {scores}",
            highlight=False,
        )
    if not report.evaluations:
        out.print("no evaluation runs yet (`kb eval run`)")


def _print_usage(report: HealthReport) -> None:
    u = report.usage

    def rate(value: float | None) -> str:
        return f"{value:.1%}" if value is not None else "n/a"

    out.print(
        f"last {u.days} days (since {u.since}): {u.questions} questions, "
        f"refused {u.refused} ({rate(u.refusal_rate)}), thumbs down {u.thumbs_down} of "
        f"{u.rated} rated ({rate(u.thumbs_down_rate)})",
        highlight=False,
    )
    busy = [f"{d.day} {d.questions}" for d in u.per_day if d.questions]
    out.print(f"questions per day: {', '.join(busy) or 'none'}", highlight=False)
    for gap in report.top_gaps:
        out.print(f"gap ({gap.times_asked}x): {gap.question}", highlight=False, markup=False)


@app.command()
def conflicts(
    days: Annotated[int, typer.Option(min=1, help="Citations of the last N days.")] = (
        CONFLICT_DAYS
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Superseded documents answers still cite, superseded documents without a successor,
    and pairs of current documents that state different values for the same detail."""
    settings = _settings()
    log = QueryLog(settings.query_log_path)
    finder = ConflictFinder(build_store(settings), log, build_embedder(settings))
    report = finder.report(Principal.of(admin=True), days=days)
    log.close()
    if as_json:
        _print_json(asdict(report))
        return
    for use in report.cited_superseded:
        out.print(
            f"[bold]superseded, still cited[/bold] {use.doc_id}: {use.cited_recently} answers "
            f"in {report.days} days ({use.cited} in all); replaced by "
            f"{', '.join(use.superseded_by) or 'nothing'}; owner {use.owner}",
            highlight=False,
        )
    for use in report.missing_successor:
        out.print(
            f"[bold]superseded, successor missing[/bold] {use.doc_id}; owner {use.owner}",
            highlight=False,
        )
    for c in report.conflicts:
        out.print(f"[bold]conflict[/bold] {c.similarity:.3f}  {c.detail}", highlight=False)
        for p in (c.a, c.b):
            where = f" ({p.section})" if p.section else ""
            out.print(f"  {p.doc_id}{where}: {p.sentence}", highlight=False, markup=False)
    out.print(
        f"{len(report.cited_superseded)} superseded documents cited, "
        f"{len(report.missing_successor)} without a successor, "
        f"{len(report.conflicts)} conflicting pairs"
    )


def main() -> None:
    try:
        app()
    except KBError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
    except ValidationError as exc:  # settings from KB_* variables
        for problem in exc.errors():
            where = ".".join(str(p) for p in problem["loc"]) or "settings"
            err.print(f"[red]error:[/red] {where}: {problem['msg']}", highlight=False)
        sys.exit(2)
