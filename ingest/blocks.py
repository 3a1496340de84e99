"""The structured text every parser produces: headings, paragraphs, list items and tables."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    text: str
    kind: str  # "heading" | "text" | "list" | "table"
    depth: int = 0  # headings: 0 is the top level
    page: int | None = None  # 1-based, for PDFs
