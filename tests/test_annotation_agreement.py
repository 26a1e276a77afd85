"""Agreement between texts: token F1, phrase match, annotator agreement."""

from __future__ import annotations

import pytest

from engine.annotations import annotator_agreement, best_match, compare, token_f1


@pytest.mark.parametrize(
    ("a", "b", "f1"),
    [("red star", "red star", 1.0), ("red star", "a big red star", 0.8), ("dog", "cat", 0.0), ("", "", 1.0),
     ("the dog", "dog", 1.0), ("red red car", "red car", 0.8)],
)
def test_token_f1(a, b, f1):
    assert token_f1(a, b) == pytest.approx(f1)


@pytest.mark.parametrize(
    ("generated", "human", "exact", "category"),
    [
        ("a photo of a red car parked on a street", "red car", 1.0, 1.0),
        ("a blue car", "red car", 0.0, 1.0),
        ("two dogs on a couch", "dog", 0.0, 1.0),
        ("a vase", "red car", 0.0, 0.0),
    ],
)
def test_compare_phrases(generated, human, exact, category):
    score = compare(generated, human)
    assert (score.exact, score.category) == (exact, category)


def test_best_match_takes_the_best_reference():
    assert best_match("red car", ["blue vase", "red car"]).exact == 1.0
    with pytest.raises(ValueError):
        best_match("red car", [])


def test_annotator_agreement_uses_images_with_several_annotators():
    texts = {"i1": [("x", "red car"), ("y", "red car"), ("z", "blue car")], "i2": [("x", "dog")]}
    result = annotator_agreement(texts)
    assert (result["images"], result["n"]) == (1, 3)
    assert result["exact"] == pytest.approx(1 / 3, abs=1e-3) and result["category"] == 1.0
