"""Whether a list reads as steps to take: its items open with a verb in the imperative
("Check the request.", "Copy the template ...") rather than with a noun, a label or a number
("Languages: English / Polish", "Four weeks before launch: ...", "AI Essentials (45
minutes)"). A document's lists are steps, courses, rules, metrics or form fields; only the
first kind answers "how do I ...?".

Tagged with spaCy's small English model (`en_core_web_sm`, which `make install` provides for
unstructured), loaded once per process on first use. Without it every list counts as steps,
as before this check existed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

log = logging.getLogger("kb.assistant")

# Share of items that must open with a base-form verb. The tagger reads some imperatives as
# nouns or adjectives ("Attach metadata", "Convert documents": 2 of the 5 steps of the data
# preparation playbook's indexing list are tagged VB), and a list may carry its own heading
# or statements among its steps (2 of the 7 items of the data access policy's "How to request
# access"); the lists that are not steps, among the golden and employee procedure questions'
# sources, had none (evals/README.md, "Answer shapes").
MIN_SHARE = 1 / 4

_lock = threading.Lock()


@cache
def _tagger() -> Any | None:
    try:
        import spacy

        return spacy.load("en_core_web_sm", disable=["parser", "ner", "lemmatizer"])
    except (ImportError, OSError) as exc:  # pragma: no cover - install problem
        log.warning("spaCy's en_core_web_sm is missing (%s): every list counts as steps", exc)
        return None


def warm() -> None:
    """Load the tagger now (a few seconds), not on the first procedure question."""
    _tagger()


def reads_as_actions(items: Sequence[str]) -> bool:
    """True when at least `MIN_SHARE` of the items open with an imperative verb."""
    if not items:
        return False
    with _lock:  # spaCy pipelines are not documented as thread-safe
        nlp = _tagger()
        if nlp is None:
            return True
        openers = [doc[0].tag_ if len(doc) else "" for doc in nlp.pipe(items)]
    return sum(tag == "VB" for tag in openers) >= MIN_SHARE * len(items)
