"""Metadata: front matter, sidecars, path defaults, and errors that name file and field."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from index.errors import MetadataError
from index.records import DocType, DocumentMeta, Status
from ingest.metadata import path_defaults, read_metadata, split_front_matter
from tests.conftest import write


def _read(tmp_path: Path, rel: str, front: str | None, sidecar: str | None = None) -> DocumentMeta:
    doc = write(tmp_path / rel, "body")
    if sidecar is not None:
        write(doc.with_name(doc.name + ".meta.yaml"), sidecar)
    return read_metadata(doc, tmp_path, front, "First heading")


def test_front_matter_is_split_from_the_body() -> None:
    front, body = split_front_matter("---\nowner: A\n---\n# Title\ntext\n")
    assert front == "owner: A"
    assert body == "# Title\ntext\n"
    assert split_front_matter("# No front matter\n") == (None, "# No front matter\n")


def test_declared_fields_win_over_path_defaults(tmp_path: Path) -> None:
    meta = _read(
        tmp_path,
        "finance/playbooks/ap.md",
        "id: ap-guide\ntitle: AP guide\ndoc_type: faq\ndepartment: legal\nowner: Priya\n"
        "last_reviewed: 2026-01-10\naccess: finance\ntags: [ocr, ap]\nsupersedes: ap-old\n",
    )
    assert meta.id == "ap-guide"
    assert meta.doc_type is DocType.FAQ
    assert meta.department == "legal"
    assert meta.access == ["finance"]
    assert meta.tags == ["ap", "ocr"]
    assert meta.supersedes == ["ap-old"]
    assert meta.status is Status.APPROVED


def test_path_gives_department_type_id_and_title(tmp_path: Path) -> None:
    meta = _read(tmp_path, "customer-service/faqs/Chatbot FAQ.md", "owner: Rosa")
    assert meta.department == "customer_service"
    assert meta.doc_type is DocType.FAQ
    assert meta.id == "chatbot-faq"
    assert meta.title == "First heading"
    assert meta.access == ["all"]


def test_path_defaults_name_only_known_departments(tmp_path: Path) -> None:
    known = frozenset({"finance", "customer_service"})
    assert path_defaults(tmp_path / "misc" / "notes" / "x.md", tmp_path, known) == {"id": "x"}
    nested = path_defaults(tmp_path / "docs" / "Finance" / "faq" / "x.md", tmp_path, known)
    assert nested == {"id": "x", "department": "finance", "doc_type": "faq"}
    dashed = path_defaults(tmp_path / "customer-service" / "x.md", tmp_path, known)
    assert dashed["department"] == "customer_service"


def test_sidecar_carries_metadata_for_binary_formats(tmp_path: Path) -> None:
    meta = _read(tmp_path, "coe/eval.pdf", None, "doc_type: vendor_evaluation\nowner: Amara\n")
    assert meta.doc_type is DocType.VENDOR_EVALUATION
    assert meta.id == "eval"


@pytest.mark.parametrize(
    ("front", "field", "needle"),
    [
        (
            "doc_type: playbook\nowner: A\nlast_reviewed: 2026-13-40\n",
            "last_reviewed",
            "YYYY-MM-DD",
        ),
        ("doc_type: guide\nowner: A\n", "doc_type", "'playbook'"),
        ("doc_type: playbook\n", "owner", "required"),
        ("doc_type: playbook\nowner: A\nrevew_by: 2026-01-01\n", "revew_by", "review_by"),
        ("doc_type: playbook\nowner: A\nstatus: live\n", "status", "'approved'"),
        ("doc_type: playbook\nowner: A\nreview_interval_days: 0\n", "review_interval_days", ""),
        ("doc_type: playbook\nowner: A\nid: Not A Slug\n", "id", "slug"),
        ("doc_type: playbook\nowner: A\naccess: []\n", "access", "group"),
        ("doc_type: [unclosed\n", "(yaml)", "line"),
        ("- just\n- a list\n", "(yaml)", "mapping"),
    ],
)
def test_invalid_metadata_names_the_field(
    tmp_path: Path, front: str, field: str, needle: str
) -> None:
    with pytest.raises(MetadataError) as caught:
        _read(tmp_path, "finance/doc.md", front)
    assert caught.value.field == field
    assert needle in caught.value.reason
    assert caught.value.path.endswith("doc.md")


def test_missing_type_without_a_type_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MetadataError) as caught:
        _read(tmp_path, "finance/doc.md", "owner: A\n")
    assert caught.value.field == "doc_type"


def test_error_in_a_sidecar_names_the_sidecar(tmp_path: Path) -> None:
    with pytest.raises(MetadataError) as caught:
        _read(tmp_path, "finance/doc.pdf", None, "doc_type: playbook\nowner: A\nyear: soon\n")
    assert caught.value.path.endswith("doc.pdf.meta.yaml")
    assert caught.value.field == "year"


def test_front_matter_and_sidecar_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="keep one"):
        _read(tmp_path, "finance/doc.md", "owner: A\n", "owner: B\n")


def test_review_date_and_staleness() -> None:
    meta = DocumentMeta(
        id="p",
        title="P",
        doc_type=DocType.POLICY,
        department="coe",
        owner="A",
        last_reviewed=dt.date(2025, 1, 1),
    )
    assert meta.review_date == dt.date(2026, 1, 1)  # policies: 365 days by default
    assert not meta.is_stale(dt.date(2026, 1, 1))
    assert meta.is_stale(dt.date(2026, 1, 2))
    explicit = meta.model_copy(update={"review_by": dt.date(2027, 6, 1)})
    assert explicit.review_date == dt.date(2027, 6, 1)
    never = meta.model_copy(update={"last_reviewed": None})
    assert never.review_date is None
    assert not never.is_stale(dt.date(2100, 1, 1))


def test_access_check_allows_everyone_or_a_shared_group() -> None:
    base = {"id": "p", "title": "P", "doc_type": "faq", "department": "hr", "owner": "A"}
    restricted = DocumentMeta.model_validate({**base, "access": ["HR", "legal"]})
    assert restricted.access == ["hr", "legal"]
    assert restricted.readable_by({"legal"})
    assert not restricted.readable_by({"finance"})
    assert DocumentMeta.model_validate(base).readable_by(set())
