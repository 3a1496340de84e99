"""Whether a list reads as steps to take: its items open with a verb in the imperative
("Check the request.", "Copy the template ...") rather than with a noun, a label or a number
("Languages: English / Polish", "Four weeks before launch: ...", "AI Essentials (45
minutes)"). A document's lists are steps, courses, rules, metrics or form fields; only the
first kind answers "how do I ...?".

Tagged with spaCy's small English model (assistant/tagging.py). Without it every list counts
as steps, as before this check existed.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistant import tagging

# Share of items that must open with a base-form verb. The tagger reads some imperatives as
# nouns or adjectives ("Attach metadata", "Convert documents": 2 of the 5 steps of the data
# preparation playbook's indexing list are tagged VB), and a list may carry its own heading
# or statements among its steps (2 of the 7 items of the data access policy's "How to request
# access"); the lists that are not steps, among the golden and employee procedure questions'
# sources, had none (evals/README.md, "Answer shapes").
MIN_SHARE = 1 / 4


def reads_as_actions(items: Sequence[str]) -> bool:
    """True when at least `MIN_SHARE` of the items open with an imperative verb."""
    if not items:
        return False
    tagged = tagging.tags(items)
    if tagged is None:
        return True
    openers = [words[0][1] if words else "" for words in tagged]
    return sum(tag == "VB" for tag in openers) >= MIN_SHARE * len(items)
