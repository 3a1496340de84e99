"""Any folder ingests: kb-defaults.yaml files, run defaults, neutral values with warnings, the
review queue's "needs an owner", and --strict keeping the old failure. Real files of every
format, the real model and a real Chroma."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from assistant.review import review_queue
from index.embedding import CachedEmbedder, SentenceTransformerEmbedder
from index.errors import InvalidRequestError
from index.store import ChromaStore
from ingest.defaults import parse_run_defaults
from ingest.metadata import MetadataOptions
from ingest.sync import Ingester
from tests.conftest import markdown, write
from tests.samples import make_docx, make_html, make_pdf
from tests.test_cli import kb

SECTIONS = [
    ("Scope", ["Northwind Traders reconciles supplier statements every month."]),
    ("Controls", ["A second reviewer signs off any adjustment above 5,000 euros."]),
]
REPORT_KEYS = {"added", "updated", "unchanged", "removed", "failed"}
NEUTRAL = {"doc_type": "reference", "owner": "unknown"}


@pytest.fixture
def model(embedder: SentenceTransformerEmbedder) -> CachedEmbedder:
    return CachedEmbedder(embedder)


def _bare_tree(root: Path) -> Path:
    """Documents of every format with no metadata at all: at the root, in a folder that is no
    department, and in a department's folder."""
    make_pdf(root / "statements.pdf", [[SECTIONS[0]], [SECTIONS[1]]])
    make_docx(root / "reports" / "controls.docx", "Controls handbook", SECTIONS)
    make_html(root / "reports" / "portal.html", "Supplier portal", SECTIONS)
    write(root / "finance" / "notes.txt", "Month-end close starts on the third working day.\n")
    write(root / "finance" / "close.md", "# Month-end close\n\nPost accruals before day three.\n")
    return root


def test_a_folder_without_metadata_ingests_with_warnings(
    tmp_path: Path, store: ChromaStore, model: CachedEmbedder
) -> None:
    report = Ingester(store, model).sync(_bare_tree(tmp_path))
    assert report.failed == []
    assert len(report.added) == 5
    warned = {w.path: w.defaulted for w in report.warnings}
    assert warned == {
        "statements.pdf": {**NEUTRAL, "department": "unassigned"},
        "reports/controls.docx": {**NEUTRAL, "department": "unassigned"},
        "reports/portal.html": {**NEUTRAL, "department": "unassigned"},
        "finance/notes.txt": NEUTRAL,  # the folder names a department
        "finance/close.md": NEUTRAL,
    }
    docs = {r.path: r.meta for r in store.documents()}
    assert docs["finance/close.md"].department == "finance"
    assert docs["statements.pdf"].department == "unassigned"
    assert {m.owner for m in docs.values()} == {"unknown"}
    assert {m.doc_type for m in docs.values()} == {"reference"}
    shown = report.to_json()
    assert set(shown) == REPORT_KEYS | {"warnings"}
    first = shown["warnings"][0]
    assert set(first) == {"path", "doc_id", "defaulted", "reason"}
    assert "kb-defaults.yaml" in first["reason"]


def test_a_complete_folder_has_no_warnings_key(
    tmp_path: Path, store: ChromaStore, model: CachedEmbedder
) -> None:
    write(tmp_path / "coe" / "a.md", markdown("a", "# A\n\nDeclared in full."))
    report = Ingester(store, model).sync(tmp_path)
    assert [e["doc_id"] for e in report.added] == ["a"]
    assert set(report.to_json()) == REPORT_KEYS


@pytest.mark.parametrize("how", ["per_run", "ingester"])
def test_strict_fails_as_before(
    tmp_path: Path, store: ChromaStore, model: CachedEmbedder, how: str
) -> None:
    root = _bare_tree(tmp_path)
    if how == "per_run":
        report = Ingester(store, model).sync(root, strict=True)
    else:
        report = Ingester(store, model, metadata=MetadataOptions(strict=True)).sync(root)
    assert report.added == []
    assert report.warnings == []
    failed = {f.path: f.reason for f in report.failed}
    assert len(failed) == 5
    message = "metadata field 'doc_type': required but missing: declare it in the metadata"
    assert all(reason.startswith(message) for reason in failed.values()), failed
    assert store.documents() == []


def test_defaults_files_nest_and_lose_to_the_files_own_metadata(
    tmp_path: Path, store: ChromaStore, model: CachedEmbedder
) -> None:
    write(tmp_path / "kb-defaults.yaml", "owner: Records team\ndoc_type: policy\n")
    write(
        tmp_path / "finance" / "kb-defaults.yaml",
        "owner: Finance operations\ntags: [close]\naccess: [finance]\n",
    )
    write(
        tmp_path / "finance" / "own.md",
        "---\nowner: Priya Raman\ndoc_type: faq\n---\n# Own\n\nA.\n",
    )
    write(tmp_path / "finance" / "deep" / "inherits.md", "# Inherits\n\nB.\n")
    make_pdf(tmp_path / "finance" / "sidecar.pdf", [[SECTIONS[0]]])
    write(tmp_path / "finance" / "sidecar.pdf.meta.yaml", "access: [all]\n")
    write(tmp_path / "top.md", "# Top\n\nC.\n")
    run = {"department": "coe", "owner": "Run owner", "vendor": "DocuSift"}
    report = Ingester(store, model).sync(tmp_path, defaults=run)
    assert report.failed == []
    assert report.warnings == []  # every required field came from somewhere
    docs = {r.path: r.meta for r in store.documents()}
    own, inherits = docs["finance/own.md"], docs["finance/deep/inherits.md"]
    assert (own.owner, own.doc_type, own.tags, own.access) == (
        "Priya Raman",
        "faq",
        ["close"],
        ["finance"],
    )
    assert (inherits.owner, inherits.doc_type, inherits.access) == (
        "Finance operations",
        "policy",
        ["finance"],
    )
    assert docs["finance/sidecar.pdf"].access == ["all"]
    # run defaults are below every defaults file, above what folders imply
    assert (docs["top.md"].owner, docs["top.md"].department) == ("Records team", "coe")
    assert inherits.department == "coe"
    assert {m.vendor for m in docs.values()} == {"DocuSift"}


def test_a_changed_defaults_file_reingests_the_documents_below_it(
    tmp_path: Path, store: ChromaStore, model: CachedEmbedder
) -> None:
    write(tmp_path / "finance" / "kb-defaults.yaml", "owner: Finance operations\n")
    write(tmp_path / "finance" / "a.md", "# A\n\nA.\n")
    write(tmp_path / "coe" / "b.md", "# B\n\nB.\n")
    ingester = Ingester(store, model)
    ingester.sync(tmp_path)
    write(tmp_path / "finance" / "kb-defaults.yaml", "owner: Close team\n")
    report = ingester.sync(tmp_path)
    assert [e["path"] for e in report.updated] == ["finance/a.md"]
    assert [e["path"] for e in report.unchanged] == ["coe/b.md"]
    assert store.document("a").meta.owner == "Close team"  # type: ignore[union-attr]
    again = ingester.sync(tmp_path, defaults={"owner": "Someone"})  # a run default changes both
    assert sorted(e["path"] for e in again.updated) == ["coe/b.md"]  # a.md's file default wins


def test_a_bad_defaults_file_fails_the_files_below_it_only(
    tmp_path: Path, store: ChromaStore, model: CachedEmbedder
) -> None:
    write(tmp_path / "legal" / "kb-defaults.yaml", "doc_type: memo\n")
    write(tmp_path / "legal" / "a.md", "# A\n\nA.\n")
    write(tmp_path / "hr" / "kb-defaults.yaml", "ownr: People team\n")
    write(tmp_path / "hr" / "b.md", "# B\n\nB.\n")
    write(tmp_path / "coe" / "c.md", "# C\n\nC.\n")
    report = Ingester(store, model).sync(tmp_path)
    failed = {f.path: f.reason for f in report.failed}
    assert failed["legal/a.md"].startswith("legal/kb-defaults.yaml: metadata field 'doc_type'")
    assert "'memo' is not allowed" in failed["legal/a.md"]
    assert failed["hr/b.md"].startswith("hr/kb-defaults.yaml: metadata field 'ownr'")
    assert "did you mean 'owner'" in failed["hr/b.md"]
    assert [e["path"] for e in report.added] == ["coe/c.md"]


def test_documents_without_an_owner_are_in_the_review_queue(
    tmp_path: Path, store: ChromaStore, model: CachedEmbedder
) -> None:
    write(
        tmp_path / "coe" / "owned.md",
        markdown("owned", "# Owned\n\nFresh.", last_reviewed="2026-10-01"),
    )
    write(
        tmp_path / "coe" / "stale.md",
        markdown("stale", "# Stale\n\nOld.", owner="Amara Okafor", last_reviewed="2024-01-01"),
    )
    write(tmp_path / "coe" / "orphan.md", "# Orphan\n\nNobody owns this yet.\n")
    Ingester(store, model).sync(tmp_path)
    queue = review_queue(store.documents(), dt.date(2026, 11, 28))
    assert [q.owner for q in queue] == ["Amara Okafor", "unknown"]
    stale, orphan = queue[0].documents[0], queue[1].documents[0]
    # a playbook reviewed 2024-01-01 was due 180 days later, 2024-06-29
    assert (stale.doc_id, stale.needs_owner, stale.days_overdue) == ("stale", False, 882)
    assert (orphan.doc_id, orphan.needs_owner, orphan.review_date) == ("orphan", True, None)
    assert orphan.days_overdue == 0


def test_run_defaults_are_parsed_as_yaml_and_checked() -> None:
    parsed = parse_run_defaults(["owner=Data team", "access=[finance, legal]", "year=2024"])
    assert parsed == {"owner": "Data team", "access": ["finance", "legal"], "year": 2024}
    for bad, needle in [
        ("owner", "key=value"),
        ("id=x", "cannot be a default"),
        ("ownr=A", "did you mean 'owner'"),
        ("tags=[unclosed", "not valid YAML"),
    ]:
        with pytest.raises(InvalidRequestError, match=needle):
            parse_run_defaults([bad])


def test_cli_defaults_warnings_and_strict(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    write(root / "finance" / "close.md", "# Month-end close\n\nPost accruals before day three.\n")
    write(root / "misc" / "notes.txt", "Supplier statements arrive on the first.\n")
    strict = kb(tmp_path / "data", "ingest", str(root), "--strict", "--json")
    assert strict.returncode == 1, strict.stderr
    assert len(json.loads(strict.stdout)["failed"]) == 2
    run = kb(tmp_path / "data", "ingest", str(root), "--default", "owner=Data team", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert set(report) == REPORT_KEYS | {"warnings"}
    assert {w["path"]: w["defaulted"] for w in report["warnings"]} == {
        "finance/close.md": {"doc_type": "reference"},
        "misc/notes.txt": {"doc_type": "reference", "department": "unassigned"},
    }
    bad = kb(tmp_path / "data", "ingest", str(root), "--default", "id=x")
    assert bad.returncode == 2
    assert "cannot be a default" in bad.stderr
