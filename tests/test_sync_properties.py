"""Property: any sequence of adds, edits, deletes, syncs and killed syncs, followed by one
sync, leaves the same store as a fresh ingest of the final tree (chroma-core's invariants
style: counts and ids round-trip, no duplicates, no orphans, no mixed versions)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.embedding import CachedEmbedder, SentenceTransformerEmbedder
from ingest.sync import Ingester
from tests.conftest import drop_store, markdown, new_store, write
from tests.storetools import (
    Interrupted,
    InterruptingStore,
    assert_consistent,
    snapshot,
)

TOPICS = ["invoice matching", "chatbot intents", "contract review", "model risk", "data retention"]


def _content(doc: int, variant: int) -> str:
    sections = "\n\n".join(
        f"## Part {s}\n\n" + f"Step {s} of {TOPICS[doc]} (revision {variant}). " * (8 + 15 * s)
        for s in range(variant % 3 + 1)
    )
    owner = ["Priya Raman", "Rosa Mendez"][variant % 2]
    return markdown(f"doc-{doc}", f"# Doc {doc}\n\n{sections}", owner=owner)


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 4), st.integers(0, 5)),
        st.tuples(st.just("delete"), st.integers(0, 4), st.just(0)),
        st.tuples(st.just("sync"), st.just(0), st.just(0)),
        st.tuples(st.just("killed"), st.integers(1, 12), st.just(0)),
    ),
    max_size=10,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=_ops)
def test_any_history_converges_to_a_fresh_ingest(
    ops: list[tuple[str, int, int]],
    chroma_client: Any,
    embedder: SentenceTransformerEmbedder,
) -> None:
    model = CachedEmbedder(embedder)
    store, fresh = new_store(chroma_client), new_store(chroma_client)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for op, a, b in ops:
                if op == "write":
                    write(root / "coe" / f"doc-{a}.md", _content(a, b))
                elif op == "delete":
                    (root / "coe" / f"doc-{a}.md").unlink(missing_ok=True)
                elif op == "sync":
                    Ingester(store, model).sync(root)
                else:
                    with contextlib.suppress(Interrupted):
                        Ingester(InterruptingStore(store, a), model).sync(root)
            report = Ingester(store, model).sync(root)
            assert report.failed == []
            Ingester(fresh, model).sync(root)
            assert_consistent(store)
            assert snapshot(store) == snapshot(fresh)
            files = sorted(p.stem for p in root.rglob("*.md"))
            assert sorted(r.doc_id for r in store.documents()) == files
    finally:
        drop_store(chroma_client, store)
        drop_store(chroma_client, fresh)
