"""Facet counts: how many distinct documents of a search's candidate pool have each
department, type, status, vendor and year, so that a spoke looking for prior projects sees
where the relevant work sits and can narrow the search with the filter of the same name.

The pool is what the retriever fuses (`HybridRetriever.retrieve_with_facets`): up to
`candidates` chunks from each retriever, each drawn under the search's `where` clause. Each
candidate is checked against that clause once more before it is counted (as every hit is), so
a document the principal may not read, or the filters exclude, is never counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from index.filters import Where, matches

log = logging.getLogger("kb.index")

FacetName = Literal["department", "doc_type", "status", "vendor", "year"]
FACET_NAMES: tuple[FacetName, ...] = ("department", "doc_type", "status", "vendor", "year")


@dataclass(frozen=True)
class FacetCount:
    value: str | int  # year is an int, every other facet a string
    count: int  # distinct documents


@dataclass(frozen=True)
class Facets:
    """Per facet name, its values by count (descending), then value; a document without a
    value for a facet (no vendor, no year) is left out of that facet."""

    counts: dict[FacetName, tuple[FacetCount, ...]] = field(default_factory=dict)

    def __getitem__(self, name: FacetName) -> tuple[FacetCount, ...]:
        return self.counts[name]

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        return {
            name: [{"value": c.value, "count": c.count} for c in values]
            for name, values in self.counts.items()
        }


def pool_documents(
    metadatas: Iterable[dict[str, Any]], where: Where | None
) -> dict[str, dict[str, Any]]:
    """The distinct documents of candidate chunks (best-ranked first): doc id -> its facet
    fields, taken from its first chunk. Chunks that `where` does not admit are left out."""
    documents: dict[str, dict[str, Any]] = {}
    refused = 0
    for md in metadatas:
        if not matches(where, md):  # defence in depth, as for hits
            refused += 1
            continue
        doc_id = str(md["doc_id"])
        if doc_id not in documents:
            documents[doc_id] = {name: md[name] for name in FACET_NAMES if name in md}
    if refused:
        log.warning("%d candidate chunks fail the query's where clause; not counted", refused)
    return documents


def count_facets(
    documents: Iterable[Mapping[str, Any]], names: Sequence[FacetName] = FACET_NAMES
) -> Facets:
    """Distinct documents per value of each facet in `names`; `documents` holds one mapping
    per document (as `pool_documents` gives them)."""
    counters: dict[FacetName, Counter[str | int]] = {name: Counter() for name in names}
    for fields in documents:
        for name, counter in counters.items():
            value = fields.get(name)
            if value is not None:
                counter[int(value) if name == "year" else str(value)] += 1
    return Facets(
        {
            name: tuple(
                FacetCount(value, count)
                for value, count in sorted(counter.items(), key=lambda vc: (-vc[1], vc[0]))
            )
            for name, counter in counters.items()
        }
    )
