"""Blocks to chunks that fit the embedding window, along the document's structure.

Headings open sections; a chunk never mixes two top-level sections unless the first is too
small to stand alone. Each chunk carries its section path ("Rollout > Step 3") and first and
last page. The text the model embeds is the chunk prefixed by the document title and section,
and, when the options ask for it, by a context line naming its file, department and type
(`embedding_text`); that whole string must fit the window, so the budget accounts for it.
Consecutive chunks of one section overlap by a few sentences.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from index.records import Chunk
from index.sentences import split_sentences
from ingest.parsing import Block

CountTokens = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class ChunkingOptions:
    max_tokens: int = 254  # MiniLM's window is 256 including [CLS] and [SEP]
    overlap_tokens: int = 32
    min_tokens: int = 48  # smaller sections merge with the next one
    # Embed each chunk with its context line (index.keyword.chunk_context). Off: on the golden
    # set it cost hybrid hit@5 0.983 -> 0.957 and dense 0.931 -> 0.862 (evals/README.md,
    # "Context in every chunk").
    context_line: bool = False


def embedding_text(title: str, section: str, text: str, context: str = "") -> str:
    """What the model embeds of a chunk: `context` (when given) on a line of its own, then
    "title > section", then the chunk's text. The stored text is the chunk's text alone."""
    header = f"{title} > {section}" if section else title
    lead = f"{context}\n" if context else ""
    return f"{lead}{header}\n{text}"


@dataclass
class _Piece:
    text: str
    tokens: int
    section: str
    page: int | None


def chunk_blocks(
    blocks: Sequence[Block],
    *,
    title: str,
    count_tokens: CountTokens,
    options: ChunkingOptions = ChunkingOptions(),
    context: str = "",
) -> list[Chunk]:
    """`context` is the line embedded with every chunk (see `embedding_text`), counted in
    each chunk's budget."""
    pieces = _pieces(blocks, title, count_tokens, options)
    chunks: list[Chunk] = []
    current: list[_Piece] = []
    headers: dict[str, int] = {}

    def flush() -> None:
        if current:
            chunks.append(_make_chunk(current))

    for piece in pieces:
        if piece.section not in headers:
            headers[piece.section] = count_tokens(
                [embedding_text(title, piece.section, "", context)]
            )[0]
        budget = options.max_tokens - headers[piece.section]
        used = sum(p.tokens + 1 for p in current)
        same_section = bool(current) and current[0].section == piece.section
        small = used < options.min_tokens
        if current and used + piece.tokens + 1 <= budget and (same_section or small):
            current.append(piece)
            continue
        overlap = _tail(current, options.overlap_tokens) if same_section else []
        flush()
        current = [*overlap, piece]
        while sum(p.tokens + 1 for p in current) > budget and len(current) > 1:
            current.pop(0)  # the overlap yields to the new content
    flush()
    return chunks


def _make_chunk(pieces: list[_Piece]) -> Chunk:
    pages = [p.page for p in pieces if p.page is not None]
    return Chunk(
        text="\n".join(p.text for p in pieces),
        section=pieces[0].section,
        page=min(pages) if pages else None,
        page_end=max(pages) if pages else None,
    )


def _tail(pieces: list[_Piece], budget: int) -> list[_Piece]:
    """The last pieces of a chunk that fit in `budget` tokens."""
    out: list[_Piece] = []
    used = 0
    for piece in reversed(pieces):
        if used + piece.tokens > budget:
            break
        out.insert(0, piece)
        used += piece.tokens + 1
    return out


def _pieces(
    blocks: Sequence[Block], title: str, count_tokens: CountTokens, options: ChunkingOptions
) -> list[_Piece]:
    """Body text as sentence-or-paragraph pieces small enough to pack, each tagged with its
    section path. A heading becomes part of the path, and also a piece of its own so that a
    chunk spanning a sub-heading keeps it."""
    stack: list[tuple[int, str]] = []  # (depth, heading) of the open sections
    out: list[_Piece] = []
    texts: list[tuple[str, str, int | None]] = []
    title_block: Block | None = None
    for block in blocks:
        if block.kind == "heading":
            heading = block.text.strip()
            if not stack and heading == title.strip():
                title_block = title_block or block
                continue  # the document title: already in every chunk's header
            while stack and stack[-1][0] >= block.depth:
                stack.pop()
            stack.append((block.depth, heading))
            texts.append((heading, _path(stack), block.page))
            continue
        texts.append((block.text, _path(stack), block.page))
    if not texts and title_block is not None:
        # A document that is only its title (a one-line note the parser reads as a heading):
        # the title is its text. Without it the document had no chunk (issue 17).
        texts.append((title_block.text.strip(), "", title_block.page))
    counts = count_tokens([t for t, _, _ in texts]) if texts else []
    limit = options.max_tokens // 2
    for (text, section, page), tokens in zip(texts, counts, strict=True):
        if tokens <= limit:
            out.append(_Piece(text, tokens, section, page))
        else:
            out.extend(_split_long(text, section, page, count_tokens, limit))
    return out


def _path(stack: list[tuple[int, str]]) -> str:
    return " > ".join(heading for _, heading in stack)


def _split_long(
    text: str, section: str, page: int | None, count_tokens: CountTokens, limit: int
) -> list[_Piece]:
    """A paragraph longer than half the window, cut at sentences (words if it must)."""
    sentences = split_sentences(text)
    counts = count_tokens(sentences)
    out: list[_Piece] = []
    for sentence, tokens in zip(sentences, counts, strict=True):
        if tokens <= limit:
            out.append(_Piece(sentence, tokens, section, page))
            continue
        words = sentence.split()
        step = max(1, len(words) * limit // (tokens + 1))
        for start in range(0, len(words), step):
            part = " ".join(words[start : start + step])
            out.append(_Piece(part, count_tokens([part])[0], section, page))
    return out
