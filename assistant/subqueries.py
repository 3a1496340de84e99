"""Searches beside the question's own, so that every thing a question asks about is read.

One search for the whole question finds the documents closest to its strongest part: "How do
the build costs of the HR Policy Assistant and Deal Notes compare?" retrieves the HR Policy
Assistant's chunks and none of Deal Notes'. So a comparison is also searched part by part
(the question cut at "and", "vs", "versus", "compared with/to", "against", and the commas
of a list), and a question about earlier work is also searched among the project documents
only (lessons learned, showcases, vendor evaluations), where a playbook that mentions the same
words cannot crowd the projects out.

`ordered()` then puts the documents in turn: the main search's best document first, then the
best document of each part's search that the main one did not already lead with, then the
rest of the main search, then the rest of the others. Context assembly (assistant/context.py)
takes the first `documents` documents in that order, so each part of a comparison gets at
least its best document while the main search keeps its lead; the search among projects
leads with none of its own, and adds its chunks to the documents read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.followup import own_words
from assistant.question import canonical
from index.hits import Hit

# Where a comparison's parts divide: "and" between words, commas in a list that ends with "and"
# ("the UK, Poland and Mexico"). Not "or": "is it 34% or 41%?" weighs values, not things.
_DIVIDERS = re.compile(
    r"\s+(?:versus|vs\.?|compared (?:with|to)|against|and)\s+|,\s*(?=[^.?!]*\band\b)",
    re.I,
)
_WORD = re.compile(r"[^\W\d_][\w'-]*")  # a number alone is not a subject
# Words that carry no subject on their own: a part made of only these is not searched.
_FUNCTION = frozenset(
    re.findall(
        r"\w+",
        """
        a an the of for in on at to by with and or vs versus compared against how what which who
        when where why do does did is are was were be been has have had we our us i my me you your
        they their it its this that these those there here compare comparison differ difference
        between both each say says said tell about than more less better worse""",
    )
)
MIN_PART_WORDS = 1  # subject words a part needs to be searched on its own
MAX_PARTS = 4  # a list longer than this is not a comparison of named things


def parts(question: str) -> list[str]:
    """The parts of a comparison worth a search of their own, in the question's order; none
    when the question does not divide into two or more parts with a subject each."""
    text = canonical(own_words(question)).rstrip("?")
    pieces = [p.strip(" ,;:") for p in _DIVIDERS.split(text)]
    pieces = [p for p in pieces if _subject_words(p) >= MIN_PART_WORDS]
    if not 2 <= len(pieces) <= MAX_PARTS:
        return []
    return pieces


def _subject_words(text: str) -> int:
    return sum(w.lower() not in _FUNCTION for w in _WORD.findall(text))


def ordered(
    main: Sequence[Hit],
    leading: Sequence[Sequence[Hit]],
    following: Sequence[Sequence[Hit]] = (),
) -> list[Hit]:
    """The hits of every search, one list (see the module's docstring): the main search's
    best document, the best document of each `leading` search (a comparison's parts), the
    rest of the main search's documents, then the others. `following` searches (among the
    projects) lead with nothing: they add chunks to the documents already found and new
    documents after them. Within a document the main search's hits come first, so an extra
    search adds without taking the place of the chunks that answer the whole question
    (ranking a document's chunks by their best rank in any search instead lost two key facts
    of the golden set's comparisons and gained none; letting the project search lead put a
    lessons-learned document before the pilot playbook that answered, and its answer lost
    every key fact: evals/README.md, "Searches beside the question's own"). A chunk found
    twice is listed once. With no extra hits, the main search as it is."""
    if not any(leading) and not any(following):
        return list(main)
    order = list(dict.fromkeys([h.doc_id for h in main[:1]] + [e[0].doc_id for e in leading if e]))
    searches = (main, *leading, *following)
    order += [h.doc_id for s in searches for h in s if h.doc_id not in order]
    documents: dict[str, list[Hit]] = {doc: [] for doc in dict.fromkeys(order)}
    seen: set[str] = set()
    for search in searches:
        for hit in search:
            if hit.chunk_id not in seen:
                seen.add(hit.chunk_id)
                documents[hit.doc_id].append(hit)
    return [hit for hits in documents.values() for hit in hits]
