"""Chunks follow the structure, fit the window, and lose no text."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from index.embedding import SentenceTransformerEmbedder
from ingest.chunking import ChunkingOptions, chunk_blocks, embedding_text
from ingest.parsing import Block


def words(texts: Sequence[str]) -> list[int]:
    """A deterministic stand-in for the tokenizer: one token per word."""
    return [len(t.split()) for t in texts]


def para(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}." for i in range(n))


def test_sections_become_paths_and_the_title_heading_is_not_repeated() -> None:
    blocks = [
        Block("Guide", "heading", 0),
        Block(para(30, "intro"), "text"),
        Block("Rollout", "heading", 1),
        Block(para(30, "roll"), "text"),
        Block("Step 3", "heading", 2),
        Block(para(30, "step"), "text"),
        Block("Support", "heading", 1),
        Block(para(30, "sup"), "text"),
    ]
    opts = ChunkingOptions(max_tokens=60, overlap_tokens=0, min_tokens=10)
    chunks = chunk_blocks(blocks, title="Guide", count_tokens=words, options=opts)
    assert [c.section for c in chunks] == ["", "Rollout", "Rollout > Step 3", "Support"]
    assert chunks[0].text.startswith("intro0.")
    assert chunks[2].text.startswith("Step 3\nstep0.")


def test_small_sections_merge_with_the_next() -> None:
    blocks = [
        Block("Owner", "heading", 1),
        Block("Priya.", "text"),
        Block("Scope", "heading", 1),
        Block(para(20, "scope"), "text"),
    ]
    opts = ChunkingOptions(max_tokens=100, overlap_tokens=0, min_tokens=10)
    chunks = chunk_blocks(blocks, title="T", count_tokens=words, options=opts)
    assert len(chunks) == 1
    assert chunks[0].section == "Owner"
    assert "Scope" in chunks[0].text


def test_long_section_splits_with_overlap_and_page_range() -> None:
    blocks = [Block(para(25, f"p{n}-"), "text", page=n) for n in range(1, 7)]
    opts = ChunkingOptions(max_tokens=60, overlap_tokens=25, min_tokens=10)
    chunks = chunk_blocks(blocks, title="T", count_tokens=words, options=opts)
    assert len(chunks) > 2
    for before, after in itertools.pairwise(chunks):
        assert before.text.splitlines()[-1] == after.text.splitlines()[0]  # overlap
    assert chunks[0].page == 1
    assert all(c.page is not None and c.page_end is not None for c in chunks)
    assert all(c.page <= c.page_end for c in chunks)  # type: ignore[operator]


def test_a_paragraph_longer_than_the_window_is_cut_at_sentences() -> None:
    sentence = "The invoice is matched against the purchase order line."
    blocks = [Block(" ".join([sentence] * 40), "text")]
    opts = ChunkingOptions(max_tokens=60, overlap_tokens=0, min_tokens=0)
    chunks = chunk_blocks(blocks, title="T", count_tokens=words, options=opts)
    assert len(chunks) > 1
    for chunk in chunks:
        assert all(line == sentence for line in chunk.text.splitlines())


_block = st.one_of(
    st.builds(
        lambda n, d: Block(f"Heading {n}", "heading", d),
        st.integers(0, 99),
        st.integers(0, 3),
    ),
    st.builds(
        lambda n, p: Block(" ".join(f"w{n}x{i}" for i in range(n)) + ".", "text", page=p),
        st.integers(1, 300),
        st.integers(1, 9),
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    blocks=st.lists(_block, min_size=1, max_size=25),
    max_tokens=st.integers(40, 200),
    overlap=st.integers(0, 19),
)
def test_every_chunk_fits_and_no_word_is_lost(
    blocks: list[Block], max_tokens: int, overlap: int
) -> None:
    opts = ChunkingOptions(max_tokens=max_tokens, overlap_tokens=overlap, min_tokens=10)
    chunks = chunk_blocks(blocks, title="Doc", count_tokens=words, options=opts)
    for chunk in chunks:
        text = embedding_text("Doc", chunk.section, chunk.text)
        assert words([text])[0] <= max_tokens + 1  # +1: words() counts the header's ">"
    emitted = {w for c in chunks for w in c.text.split()}
    expected = {w for b in blocks for w in b.text.split()}
    assert expected <= emitted


def test_chunks_fit_the_real_model_window(embedder: SentenceTransformerEmbedder) -> None:
    long_para = " ".join(
        f"Step {i}: reconcile supplier invoice INV-{i:05d} against PO-{i * 7:06d} in LedgerOne."
        for i in range(120)
    )
    blocks = [Block("Playbook", "heading", 0), Block(long_para, "text"), Block("Q&A", "heading", 1)]
    blocks += [Block(long_para[: 50 * i], "text") for i in range(1, 12)]
    chunks = chunk_blocks(blocks, title="Playbook", count_tokens=embedder.count_tokens)
    counts = embedder.count_tokens([embedding_text("Playbook", c.section, c.text) for c in chunks])
    assert max(counts) <= embedder.max_tokens - 2
    assert min(counts) > 20
