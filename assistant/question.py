"""One question, however it is typed: case, spacing and closing punctuation do not change what
is retrieved or what the generator reads.

Retrieval reads `canonical(q)`: single spaces, and one "?" in place of any closing "?", "!"
or "." (most questions are typed with one, and the refusal threshold was calibrated on them).
The embedding model and the keyword index ignore case already. The generator reads
`phrased(q, texts)`: each word in the spelling the sources use most ("docusift" ->
"DocuSift", "HOW" -> "how"), words the sources lack in lower case, the first letter
capitalised. So "How do we deploy document processing?", "how do we deploy document
processing" and "HOW DO WE DEPLOY DOCUMENT PROCESSING ?" give the model the same prompt, and
a deterministic model the same answer."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_WORD = re.compile(r"[^\W\d_][\w'\u2019-]*", re.UNICODE)
_CLOSING = " \t\n?!.\u061f\u3002\uff1f"


def canonical(question: str) -> str:
    text = " ".join(question.split()).rstrip(_CLOSING)
    return f"{text}?" if text else text


def phrased(question: str, texts: Iterable[str]) -> str:
    """The canonical question in the sources' spelling, ending with "?"."""
    spellings: dict[str, Counter[str]] = {}
    for text in texts:
        for word in _WORD.findall(text):
            spellings.setdefault(word.lower(), Counter())[word] += 1

    def spelled(match: re.Match[str]) -> str:
        word = match.group()
        seen = spellings.get(word.lower())
        if not seen:
            return "I" if word.lower() == "i" else word.lower()
        # The most frequent spelling; on a tie, the lower-case one (a word that opens
        # sentences in the sources is not a name).
        return max(seen.items(), key=lambda item: (item[1], item[0].islower()))[0]

    text = _WORD.sub(spelled, canonical(question))
    return text[:1].upper() + text[1:]
