"""How often the PDF text layer glues words together, and which pdfminer setting avoids it.

`python scripts/measure_glued_words.py PDF_OR_FOLDER... [--word-margins 0.185 0.1]`

For each PDF, pypdf's text of every page gives a vocabulary of the words the document really
contains. A word of unstructured's text (strategy "fast", the product's parser) is counted as
*glued* when it is not in that vocabulary but splits into two words that are ("STATESSECURITIES"
-> "STATES" + "SECURITIES"). Reported per pdfminer word margin (unstructured's default is 0.185,
pdfminer's own 0.1): words, glued words, the rate, and a few examples.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

_WORD = re.compile(r"[A-Za-z]{2,}")


def pdfs(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        found += sorted(path.rglob("*.pdf")) if path.is_dir() else [path]
    return found


def vocabulary(path: Path) -> set[str]:
    from pypdf import PdfReader

    words: set[str] = set()
    for page in PdfReader(path).pages:
        words.update(w.lower() for w in _WORD.findall(page.extract_text() or ""))
    return words


def glued(word: str, vocab: set[str]) -> bool:
    low = word.lower()
    if low in vocab or len(low) < 5:
        return False
    return any(low[:i] in vocab and low[i:] in vocab for i in range(2, len(low) - 1))


def unstructured_words(path: Path, word_margin: float) -> list[str]:
    from unstructured.partition.pdf import partition_pdf

    elements = partition_pdf(
        filename=str(path), strategy="fast", languages=["eng"], pdfminer_word_margin=word_margin
    )
    return [w for el in elements for w in _WORD.findall(el.text or "")]


def measure(files: Sequence[Path], margins: Sequence[float]) -> dict[str, Any]:
    vocabularies = {path: vocabulary(path) for path in files}
    result: dict[str, Any] = {"files": [str(p) for p in files]}
    for margin in margins:
        words = 0
        examples: Counter[str] = Counter()
        count = 0
        start = time.perf_counter()
        for path in files:
            for word in unstructured_words(path, margin):
                words += 1
                if glued(word, vocabularies[path]):
                    count += 1
                    examples[word] += 1
        result[f"word_margin={margin}"] = {
            "words": words,
            "glued": count,
            "per_10k_words": round(count * 10_000 / max(words, 1), 1),
            "seconds": round(time.perf_counter() - start, 1),
            "examples": [w for w, _ in examples.most_common(12)],
        }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--word-margins", nargs="+", type=float, default=[0.185, 0.1])
    args = parser.parse_args(argv)
    from index.environment import use_offline_environment

    use_offline_environment()
    print(json.dumps(measure(pdfs(args.paths), args.word_margins), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
