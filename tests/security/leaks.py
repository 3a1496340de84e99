"""Reading a response body for leaks: every string a client could see (JSON leaves and keys,
Server-Sent Event frames, or the raw text of a file), minus what the client sent itself."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

# Fields of an answer that repeat the caller's own question back (and a follow-up rewritten
# with its history): the caller's text, not the knowledge base's.
ECHO_FIELDS = frozenset({"question", "standalone_question"})


def leaves(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included; numbers as their text."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from leaves(item)
    elif value is not None:
        yield str(value)


def _without_echo(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_echo(v) for k, v in value.items() if k not in ECHO_FIELDS}
    if isinstance(value, list):
        return [_without_echo(v) for v in value]
    return value


def _sse_payloads(text: str) -> Iterator[Any]:
    for line in text.splitlines():
        if line.startswith("data:"):
            data = line[len("data:") :].strip()
            if data and data != "[DONE]":
                yield json.loads(data)


def visible_strings(body: str, content_type: str) -> list[str]:
    """What a client reads in a body: the JSON leaves (answer echo fields left out), the JSON
    of each SSE frame, or the text itself."""
    if content_type.startswith("text/event-stream"):
        return [s for payload in _sse_payloads(body) for s in leaves(_without_echo(payload))]
    if "json" in content_type:
        return list(leaves(_without_echo(json.loads(body))))
    return [body]


def sent_strings(*parts: Any) -> list[str]:
    """The strings a request carried (its path, parameters and body), longest first, so that
    removing them from an error body's echo removes the whole of each."""
    found = {s for part in parts for s in leaves(part) if s}
    found |= {segment for s in list(found) for segment in s.split("/") if segment}
    return sorted(found, key=len, reverse=True)


_SPACES = re.compile(r"\s+")


def _plain(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


def found_in(
    strings: Iterable[str], forbidden: Iterable[str], echoed: Iterable[str] = ()
) -> list[str]:
    """The forbidden strings present in `strings` (case and spacing aside), once each, after
    removing every `echoed` string (what a client sent, repeated back)."""
    echoed = sorted({_plain(e) for e in echoed if e.strip()}, key=len, reverse=True)
    hits: set[str] = set()
    for text in strings:
        low = _plain(text)
        for e in echoed:
            low = low.replace(e, " ")
        hits.update(f for f in forbidden if _plain(f) in low)
    return sorted(hits)
