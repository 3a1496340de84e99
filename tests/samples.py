"""Real files of every supported format, written by the libraries people use to make them."""

from __future__ import annotations

from pathlib import Path

Section = tuple[str, list[str]]  # heading, paragraphs


def make_pdf(path: Path, pages: list[list[Section]]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    for sections in pages:
        pdf.add_page()
        for heading, paragraphs in sections:
            pdf.set_font("Helvetica", "B", 16)
            pdf.multi_cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", size=11)
            for paragraph in paragraphs:
                pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(3)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def make_docx(path: Path, title: str, sections: list[Section]) -> Path:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for heading, paragraphs in sections:
        document.add_heading(heading, level=2)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    return path


def make_html(path: Path, title: str, sections: list[Section]) -> Path:
    body = "".join(f"<h2>{h}</h2>" + "".join(f"<p>{p}</p>" for p in paras) for h, paras in sections)
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h1>{title}</h1>{body}</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def make_blank_pdf(path: Path) -> Path:
    """A PDF with a drawing and no text layer, like a scanned page."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def write_service_base(root: Path) -> Path:
    """The four Markdown documents the HTTP tests serve: a showcase, a legal note, a price
    list only the finance group reads, and an IT FAQ long past its review date (2024-09-01;
    owner Nadia Haddad)."""
    from tests.conftest import markdown, write

    write(
        root / "customer_service" / "bot.md",
        markdown(
            "ask-kestrel",
            "# Ask Kestrel\n\n## Results\n\nThe Ask Kestrel chatbot deflected 34% of contacts.",
            doc_type="showcase",
        ),
    )
    write(root / "legal" / "clauses.md", markdown("clauses", "# Clauses\n\nClauseWise flags risk."))
    write(
        root / "finance" / "prices.md",
        markdown(
            "prices",
            "# DocuSift prices\n\nDocuSift charges GBP 0.045 per invoice page.",
            access="finance",
        ),
    )
    write(
        root / "it" / "kaig-faq.md",
        markdown(
            "kaig-faq",
            "# KAIG FAQ\n\nThe KAIG gateway keeps prompts and answers for 90 days before deletion.",
            doc_type="faq",
            owner="Nadia Haddad",
            last_reviewed="2024-09-01",
        ),
    )
    return root
