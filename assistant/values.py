"""The values a sentence states, for the conflict report (assistant/conflicts.py): percentages,
money amounts, durations, dates, and numbers with a unit ("20 MB", "500,000 tokens"),
each normalised so that the same value written two ways compares equal ("0.90" and "90%";
"GBP 1.5 million" and "GBP 1,500,000"; "1 month" and "30 days"; "ten" and "10"), and the
sentence with them masked: the *detail* the values are about.

A bare number (no unit, no currency, not a decimal fraction) states no value here: list
numbers, versions, form numbers ("AI-01") and counts without a noun say too little to compare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from index.sentences import strip_list_marker


class Kind(StrEnum):
    RATIO = "ratio"  # 90%, 0.90
    MONEY = "money"  # GBP 58,000
    DURATION = "duration"  # 30 days, 2 hours (working days are their own unit)
    DATE = "date"  # 1 September 2025, September 2025, 2025-09-01
    QUANTITY = "quantity"  # a number with a unit: 20 MB, 40 reps


@dataclass(frozen=True)
class Value:
    kind: Kind
    unit: str  # the currency, "working day", the quantity's unit; "" for ratios and dates
    amount: float | str  # the normalised amount (a date as YYYY-MM or YYYY-MM-DD)
    text: str  # as written
    start: int
    end: int

    @property
    def dimension(self) -> tuple[Kind, str]:
        """What the value measures: values of one dimension are comparable."""
        return self.kind, self.unit


_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "ninety": 90,
    "hundred": 100,
}
_NUM = r"(?<![\w.,-])(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|" + "|".join(_WORDS) + r")"
_SCALE = {"thousand": 1e3, "k": 1e3, "m": 1e6, "million": 1e6, "bn": 1e9, "billion": 1e9}
_CURRENCY = {"£": "GBP", "€": "EUR", "$": "USD"}
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_SECONDS = {
    "second": 1,
    "minute": 60,
    "min": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}
# Words after a number that are not its unit: "9 to 3 days", "4.3 out of 5", "2 or more".
_NOT_UNITS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "in",
        "is",
        "into",
        "of",
        "on",
        "or",
        "out",
        "per",
        "than",
        "that",
        "the",
        "to",
        "up",
        "was",
        "were",
        "with",
        "within",
        "more",
        "less",
        "times",
    ]
)

_PATTERNS: list[tuple[Kind, re.Pattern[str]]] = [
    (
        Kind.DATE,
        re.compile(
            r"\b(?:(?P<day>\d{1,2})\s+)?(?P<month>" + "|".join(_MONTHS) + r")\s+(?P<year>\d{4})\b"
            r"|\b(?P<iso>\d{4}-\d{2}-\d{2})\b",
            re.I,
        ),
    ),
    (
        Kind.MONEY,
        re.compile(
            r"(?P<cur>\b(?:GBP|EUR|USD|PLN|MXN)\b|[£€$])\s?(?P<num>"
            + _NUM.removeprefix(r"(?<![\w.,-])")
            + r")(?:\s?(?P<scale>thousand|million|billion|bn|k|m)\b)?",
        ),
    ),
    (
        Kind.RATIO,
        re.compile(r"(?P<num>" + _NUM + r")(?P<pct>\s?%|\s(?:percent|per cent)\b)", re.I),
    ),
    (
        Kind.DURATION,
        re.compile(
            r"(?P<num>" + _NUM + r")[\s-](?P<working>(?:working|business)\s)?"
            r"(?P<unit>second|minute|min|hour|day|week|month|year)s?\b",
            re.I,
        ),
    ),
    (
        Kind.QUANTITY,
        re.compile(
            r"(?P<num>" + _NUM + r")(?:\s(?P<scale>thousand|million|billion))?"
            r"\s?(?P<unit>MB|GB|KB|TB|[a-z][a-z-]+)\b"
        ),
    ),
    (Kind.RATIO, re.compile(r"(?<![\w.,-])(?P<num>0\.\d+|1\.0+)(?![\w.%-])")),  # 0.90
]


def _number(text: str) -> float:
    word = _WORDS.get(text.lower())
    return float(word) if word is not None else float(text.replace(",", ""))


def _amount(kind: Kind, match: re.Match[str]) -> tuple[str, float | str] | None:
    """(unit, normalised amount) of a match, or None if it states no value."""
    groups = match.groupdict()
    if kind is Kind.DATE:
        if groups["iso"]:
            return "", groups["iso"]
        month = _MONTHS.index(groups["month"].lower()) + 1
        day = f"-{int(groups['day']):02d}" if groups["day"] else ""
        return "", f"{groups['year']}-{month:02d}{day}"
    number = _number(groups["num"])
    if kind is Kind.MONEY:
        scale = _SCALE.get((groups["scale"] or "").lower(), 1.0)
        return _CURRENCY.get(groups["cur"], groups["cur"]), round(number * scale, 4)
    if kind is Kind.RATIO:
        return "", round(number / 100 if groups.get("pct") else number, 6)
    if kind is Kind.DURATION:
        unit = groups["unit"].lower()
        if groups["working"]:
            return "working day", number * _SECONDS[unit] / 86400
        return "s", number * _SECONDS[unit]
    unit = groups["unit"]
    if unit.lower() in _NOT_UNITS or unit.lower() in _MONTHS:
        return None
    scale = _SCALE.get((groups["scale"] or "").lower(), 1.0)
    return unit.lower().removesuffix("s") or unit, number * scale


def extract(sentence: str) -> list[Value]:
    """The values `sentence` states, in order; a span is read once, by the first pattern (in
    the order of _PATTERNS) that matches it."""
    taken: list[tuple[int, int]] = []
    found: list[Value] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(sentence):
            start, end = match.span()
            if any(start < e and s < end for s, e in taken):
                continue
            amount = _amount(kind, match)
            if amount is None:
                continue
            taken.append((start, end))
            found.append(Value(kind, amount[0], amount[1], match.group(0), start, end))
    return sorted(found, key=lambda v: v.start)


_ANY_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def masked(sentence: str, values: list[Value]) -> str:
    """The sentence with each value replaced by its kind (`<duration>`), and any other number
    by `<n>`: what two sentences must share to be about the same detail."""
    out: list[str] = []
    at = 0
    for value in values:
        out.append(sentence[at : value.start])
        out.append(f"<{value.kind.value}>")
        at = value.end
    out.append(sentence[at:])
    return _ANY_NUMBER.sub("<n>", "".join(out))


_NAME = re.compile(r"[A-Za-z0-9][\w-]*")


def details(sentence: str, values: list[Value]) -> set[str]:
    """The names and numbers of a sentence besides its values (capitalised words inside it,
    acronyms, ids such as "AI-01"), lowercased: what its values are about."""
    found: set[str] = set()
    for cell in masked(sentence, values).split("|"):
        words = _NAME.findall(strip_list_marker(cell.strip()))
        for i, word in enumerate(words):
            named = word[0].isupper() or any(c.isdigit() for c in word)
            if named and (i > 0 or word.isupper() or any(c.isdigit() for c in word)):
                found.add(word.lower())
    return found


def same_detail(a: set[str], b: set[str]) -> bool:
    """Whether two sentences' details (`details`) name one thing: every name of the sentence
    with fewer is in the other, and there is at least one."""
    small, large = sorted((a, b), key=len)
    return bool(small) and small <= large


def differing(a: list[Value], b: list[Value]) -> list[tuple[Value, Value]]:
    """For each dimension (dates aside) both lists state with no value in common, its first
    value in each: how two statements of one detail disagree. Empty when they agree."""
    left: dict[tuple[Kind, str], list[Value]] = {}
    right: dict[tuple[Kind, str], list[Value]] = {}
    for values, into in ((a, left), (b, right)):
        for v in values:
            if v.kind is not Kind.DATE:
                into.setdefault(v.dimension, []).append(v)
    return [
        (left[d][0], right[d][0])
        for d in left  # in the order the first list states them
        if d in right and not {v.amount for v in left[d]} & {v.amount for v in right[d]}
    ]
