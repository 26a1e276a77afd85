"""How well texts agree: between annotators of one image, or a generated caption and a human text.

Measures (all in [0, 1]):
- ``exact``: the salient-object phrases (``engine.labeling.phrase.extract_phrase``) are equal;
- ``category``: their head nouns (categories) are equal;
- ``token_f1``: SQuAD-style token F1 between the two phrases (partial match);
- ``caption_f1``: token F1 between the full texts (our caption metric; no BLEU library needed).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from engine.labeling.phrase import extract_phrase

_STOPWORDS = frozenset("a an the of".split())


def tokens(text: str) -> list[str]:
    """Lower-case word tokens without articles: ``"A Red star!"`` -> ``["red", "star"]``."""
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOPWORDS]


def token_f1(predicted: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (1.0 when both are empty).

    >>> round(token_f1("red star", "a big red star"), 3)
    0.8
    """
    pred, ref = tokens(predicted), tokens(reference)
    if not pred and not ref:
        return 1.0
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class PairScore:
    exact: float
    category: float
    token_f1: float
    caption_f1: float


def compare(predicted: str, reference: str) -> PairScore:
    """Phrase-level and text-level agreement between two texts."""
    a, b = extract_phrase(predicted), extract_phrase(reference)
    return PairScore(
        exact=float(bool(a.text) and a.text == b.text),
        category=float(bool(a.category) and a.category == b.category),
        token_f1=token_f1(a.text, b.text) if (a.text or b.text) else 0.0,
        caption_f1=token_f1(predicted, reference),
    )


def best_match(predicted: str, references: Iterable[str]) -> PairScore:
    """The best score of ``predicted`` against any reference (several annotators per image)."""
    scores = [compare(predicted, ref) for ref in references]
    if not scores:
        raise ValueError("best_match needs at least one reference text")
    return PairScore(*(max(getattr(s, f) for s in scores) for f in PairScore.__dataclass_fields__))


def mean_scores(scores: list[PairScore]) -> dict[str, float]:
    """Field-wise means (empty list -> zeros) plus ``n``."""
    n = len(scores)
    means = {f: (sum(getattr(s, f) for s in scores) / n if n else 0.0) for f in PairScore.__dataclass_fields__}
    return {**{k: round(v, 4) for k, v in means.items()}, "n": n}


def annotator_agreement(texts_by_image: dict[str, list[tuple[str, str]]]) -> dict[str, float]:
    """Mean pairwise agreement over images that have texts from two or more annotators."""
    scores = [
        compare(a[1], b[1])
        for texts in texts_by_image.values()
        for a, b in itertools.combinations(texts, 2)
    ]
    multi = sum(1 for texts in texts_by_image.values() if len(texts) > 1)
    return {**mean_scores(scores), "images": multi}
