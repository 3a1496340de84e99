"""HTML nested deeper than the parser underneath unstructured reads.

libxml2 stops building the tree at 256 levels (lxml's `huge_tree` raises that limit but still
drops text a few thousand levels down), and unstructured then returns no elements and no error
(measured: 254 nested <div>s parse, 255 give nothing). Deep nesting in real pages is wrapper
elements (div, span, font...) around the text, so the tags of such a page are counted on its
text, its wrapper tags removed there, and the rest handed to unstructured as HTML again; if it
is still too deep (nested lists or tables), its text is kept as plain text, a paragraph break
at each block element.
"""

from __future__ import annotations

import html
import re

MAX_DEPTH = 200  # comfortably under libxml2's 256 and unstructured's recursion
BLOCK_WRAPPERS = (
    "div", "center", "section", "article", "main", "aside", "nav", "header", "footer", "figure",
    "blockquote", "form", "fieldset",
)  # fmt: skip
INLINE_WRAPPERS = ("span", "font", "a", "b", "i", "u", "em", "strong", "small", "big", "abbr")
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)\b[^>]*?(/?)>")
_BLOCK_WRAPPER = re.compile(r"</?(?:" + "|".join(BLOCK_WRAPPERS) + r")\b[^>]*>", re.IGNORECASE)
_INLINE_WRAPPER = re.compile(r"</?(?:" + "|".join(INLINE_WRAPPERS) + r")\b[^>]*>", re.IGNORECASE)
_HIDDEN = re.compile(r"<(script|style|noscript)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BLOCK_TAG = re.compile(r"</?(?:p|li|tr|br|h[1-6]|td|th|ul|ol|table|title)\b[^>]*>", re.I)
_ANY_TAG = re.compile(r"<[^>]*>")


def depth(text: str) -> int:
    """Deepest nesting of elements in an HTML text, counted on its tags."""
    level = deepest = 0
    for match in _TAG.finditer(text):
        closing, name, self_closing = match.groups()
        if name.lower() in _VOID or self_closing:
            continue
        level = max(0, level - 1) if closing else level + 1
        deepest = max(deepest, level)
    return deepest


def shallow_html(text: str) -> tuple[str, str] | None:
    """None when the page is shallow enough to parse as it is; else ("html", its text without
    wrapper tags), or ("text", its plain text) when that is not enough."""
    if depth(text) <= MAX_DEPTH:
        return None
    text = _HIDDEN.sub(" ", text)
    unwrapped = _INLINE_WRAPPER.sub("", _BLOCK_WRAPPER.sub("\n", text))
    if depth(unwrapped) <= MAX_DEPTH:
        return "html", unwrapped
    plain = _ANY_TAG.sub(" ", _BLOCK_TAG.sub("\n\n", unwrapped))
    paragraphs = (" ".join(p.split()) for p in html.unescape(plain).split("\n\n"))
    return "text", "\n\n".join(p for p in paragraphs if p)
