#!/usr/bin/env python3
"""Build the binary sample-corpus documents (DOCX, PDF, HTML) from Markdown sources.

Every source is a Markdown file with YAML front matter under ``--sources`` (default
``scripts/corpus_sources``), laid out as ``<department>/<id>.md``. The front matter follows
docs/metadata.md plus one extra key, ``format``, which is one of ``docx``, ``pdf`` or ``html``.

For each source the script writes, under ``--out`` (default ``corpus``):

* ``<department>/<id>.<format>``            the rendered document
* ``<department>/<id>.<format>.meta.yaml``  the sidecar metadata (front matter minus ``format``)

The Markdown subset understood here is deliberately small: ``#``/``##``/``###`` headings,
paragraphs, ``-``/``*`` bullet lists, ``1.`` numbered lists (one nested level by indentation),
pipe tables and inline ``**bold**``, ``*italic*`` and ``code`` spans. Output is deterministic:
fixed creation/modification dates in PDF and DOCX metadata and fixed ZIP timestamps in DOCX, so
regenerating unchanged sources leaves the files byte-identical (and untouched on disk).

Usage::

    .venv/bin/python scripts/build_corpus_binaries.py [--sources DIR] [--out DIR] [--quiet]
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import io
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

FORMATS = ("docx", "pdf", "html")
# Fixed timestamp written into document metadata so the output is reproducible.
FIXED_DATE = dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=dt.UTC)
FIXED_ZIP_DATE = (2026, 1, 1, 0, 0, 0)
AUTHOR = "Kestrel Components AI CoE (sample corpus)"

# Typographic characters that core PDF fonts cannot show; mapped to ASCII on the way in.
ASCII_MAP = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u2022": "-",
    "\u2192": "->",
    "\u00d7": "x",
    "\u2264": "<=",
    "\u2265": ">=",
}


# --------------------------------------------------------------------------------------------
# Markdown parsing (small, dependency-free subset)
# --------------------------------------------------------------------------------------------


@dataclass
class Block:
    kind: str  # heading | para | ul | ol | table
    level: int = 0  # heading level
    text: str = ""
    items: list[tuple[int, str]] = field(default_factory=list)  # (depth, text) for lists
    rows: list[list[str]] = field(default_factory=list)  # tables: first row is the header


FRONT_MATTER_RE = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)
HEADING_RE = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
BULLET_RE = re.compile(r"^(\s*)[-*+]\s+(.*)$")
NUMBER_RE = re.compile(r"^(\s*)\d+[.)]\s+(.*)$")
TABLE_SEP_RE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def split_front_matter(text: str) -> tuple[dict, str]:
    m = FRONT_MATTER_RE.match(text)
    if not m:
        raise ValueError("missing YAML front matter")
    meta = yaml.safe_load(m.group(1)) or {}
    if not isinstance(meta, dict):
        raise ValueError("front matter is not a mapping")
    return meta, text[m.end() :]


def to_ascii(text: str) -> str:
    for src, dst in ASCII_MAP.items():
        text = text.replace(src, dst)
    return text


def split_row(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [cell.strip() for cell in line.split("|")]


def parse_markdown(body: str) -> list[Block]:
    lines = body.splitlines()
    blocks: list[Block] = []
    para: list[str] = []
    i = 0

    def flush_para() -> None:
        if para:
            blocks.append(Block("para", text=" ".join(s.strip() for s in para)))
            para.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            flush_para()
            i += 1
            continue
        if stripped.startswith("```"):
            # Code fences: keep the content as plain paragraphs, one per line.
            flush_para()
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                if lines[i].strip():
                    blocks.append(Block("para", text=lines[i].rstrip()))
                i += 1
            i += 1
            continue
        m = HEADING_RE.match(stripped)
        if m and not line.startswith("    "):
            flush_para()
            blocks.append(Block("heading", level=len(m.group(1)), text=m.group(2)))
            i += 1
            continue
        if stripped.startswith("|") and i + 1 < len(lines) and TABLE_SEP_RE.match(lines[i + 1]):
            flush_para()
            rows = [split_row(stripped)]
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(split_row(lines[i]))
                i += 1
            width = len(rows[0])
            rows = [(r + [""] * width)[:width] for r in rows]
            blocks.append(Block("table", rows=rows))
            continue
        bm, nm = BULLET_RE.match(line), NUMBER_RE.match(line)
        if (bm or nm) and not para:
            kind = "ul" if bm else "ol"
            items: list[tuple[int, str]] = []
            while i < len(lines):
                cur = lines[i]
                if not cur.strip():
                    # A blank line ends the list unless the next line continues it.
                    nxt = lines[i + 1] if i + 1 < len(lines) else ""
                    if BULLET_RE.match(nxt) if kind == "ul" else NUMBER_RE.match(nxt):
                        i += 1
                        continue
                    break
                cb, cn = BULLET_RE.match(cur), NUMBER_RE.match(cur)
                mm = cb or cn
                if mm:
                    depth = 1 if len(mm.group(1).replace("\t", "    ")) >= 2 else 0
                    if depth == 0 and ((kind == "ul") != bool(cb)):
                        break  # a top-level list of the other kind starts a new block
                    items.append((depth, mm.group(2).strip()))
                elif cur.startswith((" ", "\t")) and items:
                    d, t = items[-1]
                    items[-1] = (d, t + " " + cur.strip())
                else:
                    break
                i += 1
            blocks.append(Block(kind, items=items))
            continue
        para.append(line)
        i += 1
    flush_para()
    return blocks


INLINE_RE = re.compile(r"(\*\*[^*]+\*\*|`[^`]+`|(?<![\w*])\*[^*\s][^*]*\*(?![\w*]))")
LINK_RE = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


def inline_runs(text: str) -> list[tuple[str, bool, bool]]:
    """Split text into (content, bold, italic) runs; links keep their label only."""
    text = LINK_RE.sub(r"\1", text)
    runs: list[tuple[str, bool, bool]] = []
    pos = 0
    for m in INLINE_RE.finditer(text):
        if m.start() > pos:
            runs.append((text[pos : m.start()], False, False))
        tok = m.group(0)
        if tok.startswith("**"):
            runs.append((tok[2:-2], True, False))
        elif tok.startswith("`"):
            runs.append((tok[1:-1], False, False))
        else:
            runs.append((tok[1:-1], False, True))
        pos = m.end()
    if pos < len(text):
        runs.append((text[pos:], False, False))
    return runs


def plain(text: str) -> str:
    return "".join(r[0] for r in inline_runs(text))


def inline_html(text: str) -> str:
    return "".join(chunk for chunk, _bold, _italic in _inline_html_runs(text))


def _inline_html_runs(text: str):
    pos = 0
    for m in INLINE_RE.finditer(text):
        if m.start() > pos:
            yield _html_links(text[pos : m.start()]), False, False
        tok = m.group(0)
        if tok.startswith("**"):
            yield f"<strong>{_html_links(tok[2:-2])}</strong>", True, False
        elif tok.startswith("`"):
            yield f"<code>{html.escape(tok[1:-1])}</code>", False, False
        else:
            yield f"<em>{_html_links(tok[1:-1])}</em>", False, True
        pos = m.end()
    if pos < len(text):
        yield _html_links(text[pos:]), False, False


def _html_links(text: str) -> str:
    out, pos = [], 0
    for m in LINK_RE.finditer(text):
        out.append(html.escape(text[pos : m.start()], quote=False))
        out.append(
            f'<a href="{html.escape(m.group(2))}">{html.escape(m.group(1), quote=False)}</a>'
        )
        pos = m.end()
    out.append(html.escape(text[pos:], quote=False))
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Renderers
# --------------------------------------------------------------------------------------------


def render_html(meta: dict, blocks: list[Block]) -> bytes:
    title = str(meta.get("title") or meta.get("id"))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:Arial,Helvetica,sans-serif;max-width:48rem;margin:2rem auto;"
        "line-height:1.5;color:#222}table{border-collapse:collapse}"
        "th,td{border:1px solid #999;padding:.3rem .6rem;text-align:left}</style>",
        "</head>",
        "<body>",
        "<main>",
        "<article>",
    ]
    for b in blocks:
        if b.kind == "heading":
            lvl = min(b.level, 6)
            out.append(f"<h{lvl}>{inline_html(b.text)}</h{lvl}>")
        elif b.kind == "para":
            out.append(f"<p>{inline_html(b.text)}</p>")
        elif b.kind in ("ul", "ol"):
            tag = b.kind
            out.append(f"<{tag}>")
            open_sub = False
            for idx, (depth, text) in enumerate(b.items):
                nxt_depth = b.items[idx + 1][0] if idx + 1 < len(b.items) else 0
                if depth == 0:
                    if open_sub:
                        out.append("</ul></li>")
                        open_sub = False
                    if nxt_depth == 1:
                        out.append(f"<li>{inline_html(text)}<ul>")
                        open_sub = True
                    else:
                        out.append(f"<li>{inline_html(text)}</li>")
                else:
                    if not open_sub:
                        out.append("<li><ul>")
                        open_sub = True
                    out.append(f"<li>{inline_html(text)}</li>")
            if open_sub:
                out.append("</ul></li>")
            out.append(f"</{tag}>")
        elif b.kind == "table":
            out.append("<table>")
            out.append(
                "<thead><tr>"
                + "".join(f"<th>{inline_html(c)}</th>" for c in b.rows[0])
                + "</tr></thead>"
            )
            out.append("<tbody>")
            for row in b.rows[1:]:
                out.append("<tr>" + "".join(f"<td>{inline_html(c)}</td>" for c in row) + "</tr>")
            out.append("</tbody>")
            out.append("</table>")
    out += ["</article>", "</main>", "</body>", "</html>", ""]
    return "\n".join(out).encode("utf-8")


def render_docx(meta: dict, blocks: list[Block]) -> bytes:
    from docx import Document

    doc = Document()
    cp = doc.core_properties
    cp.title = str(meta.get("title") or meta.get("id"))
    cp.author = AUTHOR
    cp.last_modified_by = AUTHOR
    cp.created = FIXED_DATE.replace(tzinfo=None)
    cp.modified = FIXED_DATE.replace(tzinfo=None)
    cp.last_printed = FIXED_DATE.replace(tzinfo=None)
    cp.revision = 1
    cp.keywords = ", ".join(str(t) for t in meta.get("tags") or [])

    def add_runs(par, text: str) -> None:
        for content, bold, italic in inline_runs(text):
            run = par.add_run(content)
            run.bold = bold or None
            run.italic = italic or None

    for b in blocks:
        if b.kind == "heading":
            level = min(b.level, 3) if b.level > 1 else 1
            par = doc.add_heading(level=level)
            add_runs(par, b.text)
        elif b.kind == "para":
            add_runs(doc.add_paragraph(), b.text)
        elif b.kind in ("ul", "ol"):
            base = "List Bullet" if b.kind == "ul" else "List Number"
            for depth, text in b.items:
                style = (
                    base if depth == 0 else ("List Bullet 2" if b.kind == "ul" else "List Number 2")
                )
                add_runs(doc.add_paragraph(style=style), text)
        elif b.kind == "table":
            table = doc.add_table(rows=len(b.rows), cols=len(b.rows[0]))
            table.style = "Table Grid"
            for r, row in enumerate(b.rows):
                for c, cell_text in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = ""
                    par = cell.paragraphs[0]
                    for content, bold, italic in inline_runs(cell_text):
                        run = par.add_run(content)
                        run.bold = True if r == 0 else (bold or None)
                        run.italic = italic or None
            doc.add_paragraph()

    raw = io.BytesIO()
    doc.save(raw)
    return _normalise_zip(raw.getvalue())


def _normalise_zip(data: bytes) -> bytes:
    """Rewrite a ZIP archive with fixed timestamps and stable member order."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_DATE)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            dst.writestr(zi, src.read(info.filename))
    return out.getvalue()


def render_pdf(meta: dict, blocks: list[Block]) -> bytes:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    title = str(meta.get("title") or meta.get("id"))
    footer_label = f"Kestrel Components - {meta.get('department', '')} - {meta.get('id', '')}"

    class PDF(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Helvetica", "", 8)
            self.set_text_color(110, 110, 110)
            self.cell(0, 6, f"{footer_label}  |  page {self.page_no()}/{{nb}}", align="C")
            self.set_text_color(0, 0, 0)

    pdf = PDF(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(title)
    pdf.set_author(AUTHOR)
    pdf.set_creator("scripts/build_corpus_binaries.py")
    pdf.set_producer("fpdf2")
    pdf.set_keywords(", ".join(str(t) for t in meta.get("tags") or []))
    pdf.set_margins(20, 18, 20)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.alias_nb_pages()
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin
    nl = {"new_x": XPos.LMARGIN, "new_y": YPos.NEXT}

    def safe(text: str) -> str:
        return to_ascii(plain(text)).encode("latin-1", "replace").decode("latin-1")

    sizes = {1: 18, 2: 14, 3: 12}
    for b in blocks:
        if b.kind == "heading":
            size = sizes.get(b.level, 11)
            pdf.ln(3 if b.level > 1 else 0)
            if pdf.will_page_break(size * 1.6):
                pdf.add_page()
            pdf.set_font("Helvetica", "B", size)
            pdf.multi_cell(width, size * 0.5, safe(b.text), **nl)
            pdf.ln(1.5)
        elif b.kind == "para":
            pdf.set_font("Helvetica", "", 10.5)
            pdf.multi_cell(width, 5.2, safe(b.text), **nl)
            pdf.ln(2)
        elif b.kind in ("ul", "ol"):
            pdf.set_font("Helvetica", "", 10.5)
            counters = [0, 0]
            for depth, text in b.items:
                counters[depth] += 1
                if depth == 0:
                    counters[1] = 0
                indent = 5 + depth * 6
                marker = "-" if b.kind == "ul" else f"{counters[depth]}."
                pdf.set_x(pdf.l_margin + indent)
                pdf.multi_cell(width - indent, 5.2, f"{marker} {safe(text)}", **nl)
                pdf.ln(0.8)
            pdf.ln(1.5)
        elif b.kind == "table":
            pdf.set_font("Helvetica", "", 9)
            with pdf.table(
                text_align="LEFT", line_height=4.8, width=width, first_row_as_headings=True
            ) as table:
                for row in b.rows:
                    tr = table.row()
                    for cell_text in row:
                        tr.cell(safe(cell_text))
            pdf.ln(3)
    return bytes(pdf.output())


RENDERERS = {"html": render_html, "docx": render_docx, "pdf": render_pdf}


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def sidecar_yaml(meta: dict) -> str:
    side = {k: v for k, v in meta.items() if k != "format"}
    return yaml.safe_dump(
        side, sort_keys=False, allow_unicode=False, default_flow_style=None, width=100
    )


def write_if_changed(path: Path, data: bytes) -> bool:
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return True


def build(sources: Path, out: Path, quiet: bool = False) -> int:
    errors = 0
    files = sorted(p for p in sources.rglob("*.md") if p.is_file())
    if not files:
        print(f"no sources found under {sources}", file=sys.stderr)
    for src in files:
        rel = src.relative_to(sources)
        try:
            text = src.read_text(encoding="utf-8")
            if any(ord(ch) > 127 for ch in text):
                print(
                    f"warning: {rel}: non-ASCII characters (mapped where possible)", file=sys.stderr
                )
                text = to_ascii(text)
            meta, body = split_front_matter(text)
            fmt = str(meta.get("format", "")).lower()
            if fmt not in FORMATS:
                raise ValueError(f"front matter 'format' must be one of {FORMATS}, got {fmt!r}")
            blocks = parse_markdown(body)
            data = RENDERERS[fmt](meta, blocks)
        except Exception as exc:  # report and continue with the other sources
            print(f"error: {rel}: {exc}", file=sys.stderr)
            errors += 1
            continue
        target = out / rel.parent / f"{src.stem}.{fmt}"
        sidecar = target.with_name(target.name + ".meta.yaml")
        changed = write_if_changed(target, data)
        changed |= write_if_changed(sidecar, sidecar_yaml(meta).encode("utf-8"))
        if not quiet:
            print(f"{'wrote' if changed else 'unchanged'}: {target}")
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sources",
        default="scripts/corpus_sources",
        type=Path,
        help="root of the Markdown sources (default: scripts/corpus_sources)",
    )
    ap.add_argument(
        "--out", default="corpus", type=Path, help="root of the generated corpus (default: corpus)"
    )
    ap.add_argument("--quiet", action="store_true", help="only print warnings and errors")
    args = ap.parse_args(argv)
    if not args.sources.is_dir():
        print(f"sources directory not found: {args.sources}", file=sys.stderr)
        return 2
    return build(args.sources, args.out, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
