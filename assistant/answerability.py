"""Does the answer answer the question? A second reading of a finished answer by the local model.

The extractive composer always finds sentences near a question, so on its own it answers
questions the base cannot: "What's the API rate limit on DocuSift?" got three sentences about
DocuSift, none with a rate limit. The questions of the base that it cannot answer are mostly of
this kind, about a product, project or team the base knows, asking for a detail it does not
hold, so neither the retrieval score nor the similarity of the quoted sentences tells them apart
(area under the ROC curve 0.69 and 0.71 on the golden set: evals/README.md, "The answer
judge").

The judge shows the model the question and the answer's statements (no [n] markers, no stale
warning) and asks for one word, yes or no: does the text state what the question asks for? It
reads the model's probability of each as the reply's first token (one prompt evaluation,
nothing generated) and returns P(yes) / (P(yes) + P(no)). Below `threshold` the answer is
refused. The threshold keeps 99% of the golden calibration part's answerable questions
answered (`python -m evals.calibrate_judge`); on the golden report part it refuses 0.21 of the
unanswerable questions (none before) and 3.5% of the answerable ones (1.8% before), on the
employee set 0.14 and none. A yes/no question measured better than asking the model to copy
the answer or say "NOT IN TEXT" (AUC 0.83 against 0.70 on the golden set, in a prototype).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

SYSTEM = "You check whether a text answers a question. Reply with one word: yes or no."
ASK = "Does the text state the specific information the question asks for? Reply yes or no."
YES = ("yes", "Yes", " yes", " Yes", "YES")
NO = ("no", "No", " no", " No", "NO")
_MARKERS = re.compile(r"\s*\[\d+\]")


class OpeningModel(Protocol):
    def opening_probabilities(
        self, messages: list[dict[str, str]], openings: Sequence[Sequence[str]]
    ) -> list[float]:
        """For each group of openings, the probability the reply opens with one of them."""
        ...


@dataclass(frozen=True)
class JudgeOptions:
    # P(yes) under which an answer is refused; chosen on the golden calibration part
    # (evals/README.md, "The answer judge").
    threshold: float = 0.35
    # Characters of the answer the judge reads: a procedure's eleven steps with their details
    # fit; the cut keeps the prompt near 700 tokens (about 5 s on two cores).
    max_chars: int = 2500


class AnswerJudge:
    def __init__(self, model: OpeningModel, options: JudgeOptions | None = None) -> None:
        self._model = model
        self.options = options or JudgeOptions()

    def messages(self, question: str, answer: str) -> list[dict[str, str]]:
        text = _MARKERS.sub("", answer).strip()[: self.options.max_chars]
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Question: {question}\n\nText:\n{text}\n\n{ASK}"},
        ]

    def probability(self, question: str, answer: str) -> float:
        """How likely the answer states what the question asks for (0..1)."""
        yes, no = self._model.opening_probabilities(self.messages(question, answer), [YES, NO])
        return yes / (yes + no) if yes + no > 0 else 0.0

    def answers(self, question: str, answer: str) -> tuple[bool, float]:
        """(whether the answer passes, its probability)."""
        p = self.probability(question, answer)
        return p >= self.options.threshold, p
