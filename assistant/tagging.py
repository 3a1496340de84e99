"""Part-of-speech tags from spaCy's small English model (`en_core_web_sm`, which `make install`
provides for unstructured), loaded once per process on first use. Callers that read tags
(assistant/actions.py: does a list read as steps; assistant/followup.py: does a question refer
back) fall back to their own rule when the model is missing (`tags` returns None)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

log = logging.getLogger("kb.assistant")

_lock = threading.Lock()


@cache
def _tagger() -> Any | None:
    try:
        import spacy

        return spacy.load("en_core_web_sm", disable=["parser", "ner", "lemmatizer"])
    except (ImportError, OSError) as exc:  # pragma: no cover - install problem
        log.warning("spaCy's en_core_web_sm is missing (%s): tag-based rules are off", exc)
        return None


def warm() -> None:
    """Load the tagger now (a few seconds), not on the first question that needs it."""
    _tagger()


def tags(texts: Sequence[str]) -> list[list[tuple[str, str]]] | None:
    """(word, Penn Treebank tag) pairs of each text; None without the model."""
    with _lock:  # spaCy pipelines are not documented as thread-safe
        nlp = _tagger()
        if nlp is None:
            return None
        return [[(token.text, token.tag_) for token in doc] for doc in nlp.pipe(texts)]
