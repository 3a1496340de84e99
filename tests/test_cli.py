"""The `kb` console script as users run it: a real process over a real embedded store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import markdown, write

KB = Path(sys.executable).parent / "kb"  # the console script installed beside this Python


def kb(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KB_DATA_DIR": str(data_dir), "KB_TODAY": "2026-11-28", **(env or {})}
    return subprocess.run(
        [str(KB), *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs")
    write(
        root / "finance" / "ap.md",
        markdown(
            "ap-lessons",
            "# AP lessons\n\n## Outcome\n\nTouchless matching rose from 38% to 81% with DocuSift.",
            doc_type="lessons_learned",
            last_reviewed="2024-01-01",
        ),
    )
    write(
        root / "coe" / "intake.md",
        markdown("intake", "# Intake\n\nSubmit the AI-01 form; triage takes 10 working days."),
    )
    write(root / "coe" / "notes.rtf", "{\\rtf1 not supported}")
    return root


def test_ingest_json_report_then_search_and_docs(tmp_path: Path, tree: Path) -> None:
    first = kb(tmp_path, "ingest", str(tree), "--json")
    assert first.returncode == 1, first.stderr  # one file failed, the rest went in
    report = json.loads(first.stdout)
    assert set(report) == {"added", "updated", "unchanged", "removed", "failed"}
    assert sorted(e["doc_id"] for e in report["added"]) == ["ap-lessons", "intake"]
    assert report["failed"] == [
        {"path": "coe/notes.rtf", "reason": report["failed"][0]["reason"]},
    ]
    assert "unsupported format '.rtf'" in report["failed"][0]["reason"]

    again = json.loads(kb(tmp_path, "ingest", str(tree), "--json").stdout)
    assert (again["added"], again["updated"], len(again["unchanged"])) == ([], [], 2)

    found = kb(tmp_path, "search", "how much did touchless matching improve", "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert hits[0]["doc_id"] == "ap-lessons"
    assert {"doc_id", "title", "path", "page", "section", "score", "text"} <= set(hits[0])
    assert hits[0]["section"] == "Outcome"
    assert hits[0]["is_stale"] is True

    only_coe = json.loads(
        kb(tmp_path, "search", "touchless matching", "--department", "coe", "--json").stdout
    )
    assert [h["doc_id"] for h in only_coe] == ["intake"]

    listed = json.loads(kb(tmp_path, "docs", "--json").stdout)
    assert [d["doc_id"] for d in listed] == ["ap-lessons", "intake"]
    assert listed[0]["stale"] is True

    human = kb(tmp_path, "ingest", str(tree))
    assert "unchanged 2" in human.stdout
    assert "coe/notes.rtf" in human.stderr


def test_the_data_folder_inside_the_ingested_tree_is_never_ingested(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    write(root / "intake.md", markdown("intake", "# Intake\n\nSubmit the AI-01 form."))
    data = root / "data"  # KB_DATA_DIR=./data kb ingest .
    first = kb(data, "ingest", str(root), "--json")
    assert first.returncode == 0, first.stdout + first.stderr
    assert [e["doc_id"] for e in json.loads(first.stdout)["added"]] == ["intake"]
    assert (data / "chroma").is_dir()  # the store, its log and keys now sit inside the tree
    kb(data, "ask", "How do I submit an intake?", "--generator", "extractive")
    again = json.loads(kb(data, "ingest", str(root), "--json").stdout)
    assert (again["failed"], again["added"], len(again["unchanged"])) == ([], [], 1)


def test_bad_parameters_get_a_clear_error(tmp_path: Path) -> None:
    result = kb(tmp_path, "search", "x", "--type", "memo")
    assert result.returncode == 2
    assert "doc_type" in result.stderr
    assert "playbook" in result.stderr
    missing = kb(tmp_path, "ingest", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "not a folder" in missing.stderr


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    created = kb(
        tmp_path,
        "keys",
        "create",
        "--name",
        "cs bot",
        "--role",
        "spoke",
        "--group",
        "customer_service",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith(f"kb_{key['key_id']}_")
    assert (key["role"], key["groups"]) == ("spoke", ["customer_service"])
    human = kb(tmp_path, "keys", "create", "--name", "other")
    assert human.stdout.strip().startswith("kb_")  # the key alone on stdout, for scripts
    assert "cannot be shown again" in human.stderr
    listed = json.loads(kb(tmp_path, "keys", "list", "--json").stdout)
    assert [k["name"] for k in listed] == ["cs bot", "other"]
    assert all("key" not in k for k in listed)
    assert kb(tmp_path, "keys", "revoke", key["key_id"]).returncode == 0
    listed = json.loads(kb(tmp_path, "keys", "list", "--json").stdout)
    assert listed[0]["revoked_at"] is not None
    again = kb(tmp_path, "keys", "revoke", key["key_id"])
    assert again.returncode == 2
    assert "no active key" in again.stderr
    bad = kb(tmp_path, "keys", "create", "--name", "x", "--role", "root")
    assert bad.returncode == 2
    assert "root" in bad.stderr


def test_dev_mode_refuses_a_public_address(tmp_path: Path) -> None:
    env_run = subprocess.run(
        [str(KB), "serve", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        env={**os.environ, "KB_DATA_DIR": str(tmp_path), "KB_AUTH": "dev"},
        timeout=120,
        check=False,
    )
    assert env_run.returncode == 2
    assert "KB_AUTH=dev" in env_run.stderr
    assert "Traceback" not in env_run.stderr


def test_refused_cli_questions_reach_the_gap_report(tmp_path: Path, tree: Path) -> None:
    kb(tmp_path, "ingest", str(tree))
    asked = kb(
        tmp_path,
        "ask",
        "Which band plays at the summer party?",
        "--generator",
        "extractive",
        "--json",
    )
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["refused"] is True
    gaps = json.loads(kb(tmp_path, "gaps", "--json").stdout)
    assert [(g["question"], g["times_asked"]) for g in gaps] == [
        ("Which band plays at the summer party?", 1)
    ]


def test_a_streamed_answer_is_printed_once(tmp_path: Path, tree: Path) -> None:
    kb(tmp_path, "ingest", str(tree))
    # Unjudged, an extractive answer streams as it is composed.
    question = "How long does intake triage take?"
    unjudged = {"KB_ANSWER_JUDGE": "off"}
    asked = kb(tmp_path, "ask", question, "--generator", "extractive", env=unjudged)
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.count("triage takes 10 working days") == 1, asked.stdout
    assert "Intake (" in asked.stdout  # its source is listed under the answer
