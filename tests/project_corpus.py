"""A part of the shipped corpus for the similar-projects and health tests: the Markdown project
documents of every department (lessons learned, showcases, vendor evaluations), some of them
readable by one group only, and a few other documents. Markdown only, so that ingesting it
takes seconds; the same app serves both test modules' needs with keys of different groups."""

from __future__ import annotations

import shutil
from pathlib import Path

from api.assembly import build_ingester, build_store
from api.keys import KeyStore, Role
from api.settings import Settings
from index.embedding import Embedder

CORPUS = Path(__file__).parents[1] / "corpus"
TODAY = "2026-11-28"
FILES = (
    "finance/expense-receipt-ocr-lessons.md",
    "finance/ap-invoice-matching-showcase.md",
    "finance/ap-fraud-controls-internal.md",  # finance only
    "finance/finance-ai-faq.md",
    "customer_service/ask-kestrel-lessons.md",
    "customer_service/convai-labs-vendor-evaluation.md",
    "hr/hr-cv-screening-lessons.md",
    "hr/hr-cv-screening-bias-audit.md",  # hr only, lessons learned
    "hr/hr-policy-assistant-showcase.md",
    "coe/ticket-summariser-injection-lessons.md",  # coe only, lessons learned
    "coe/stratus-ai-renewal-assessment.md",  # coe only, vendor evaluation
    "coe/ai-use-policy.md",
    "legal/clausewise-vendor-evaluation.md",
    "it/vector-search-vendor-evaluation.md",
    "marketing/content-studio-lessons.md",
    "marketing/quillmark-vendor-evaluation.md",
    "sales/deal-notes-pilot-review.md",
    "sales/deal-notes-build-vs-buy-evaluation.md",
)
# Who the tests call as: role and groups of each key.
ROLES = {
    "admin": (Role.ADMIN, []),
    "finance_reader": (Role.READER, ["finance"]),
    "hr_reader": (Role.READER, ["hr"]),
    "coe_reader": (Role.READER, ["coe"]),
    "finance_spoke": (Role.SPOKE, ["finance"]),
}


def copy_corpus(target: Path) -> Path:
    for rel in FILES:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / rel, target / rel)
    return target


def ingest_with_keys(settings: Settings, folder: Path, embedder: Embedder) -> dict[str, str]:
    """Sync `folder` into the settings' store with `embedder` (the session's real model; it
    must ingest without failures) and create a key per ROLES entry; returns the keys."""
    store = build_store(settings)
    report = build_ingester(settings, store, embedder).sync(folder)
    if report.failed:
        raise AssertionError(f"the test corpus failed to ingest: {report.failed}")
    keys = KeyStore(settings.keys_path)
    created = {name: keys.create(name, role, groups) for name, (role, groups) in ROLES.items()}
    keys.close()
    return created


def kb_settings(folder: Path, data: Path) -> Settings:
    return Settings(
        data_dir=data,
        corpus_dir=folder,
        today=TODAY,
        generator="extractive",
        serve_threads=2,  # torch threads are process-wide: leave the other tests theirs
        rate_limit_per_minute=0,  # these tests make many requests with few keys
    )
