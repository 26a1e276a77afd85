"""COCO RLE round trips on hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest

from engine.masks import decode_rle, encode_rle, rle_area
from engine.masks.rle import to_coco_rle

MASKS = {
    "empty": np.zeros((4, 4), bool),
    "full": np.ones((4, 4), bool),
    "corner": np.array([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], bool),
    "column": np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0]], bool),
    "random": np.random.default_rng(0).random((37, 53)) > 0.5,
}


@pytest.mark.parametrize("name", sorted(MASKS))
def test_roundtrip_and_area(name):
    mask = MASKS[name]
    counts = encode_rle(mask)
    assert isinstance(counts, str)
    decoded = decode_rle(counts, mask.shape)
    assert decoded.dtype == bool and decoded.shape == mask.shape and np.array_equal(decoded, mask)
    assert rle_area(counts, mask.shape) == int(mask.sum())


def test_more_than_255_rles_have_correct_areas():
    # pycocotools' batched area overflows on long lists with numpy 2; we call it per RLE.
    masks = [np.pad(np.ones((k % 7 + 1, 3), bool), ((0, 10), (0, 10))) for k in range(300)]
    assert [rle_area(encode_rle(m), m.shape) for m in masks] == [int(m.sum()) for m in masks]


def test_coco_object_and_shape_check():
    mask = MASKS["corner"]
    assert to_coco_rle(encode_rle(mask), (4, 4)) == {"size": [4, 4], "counts": encode_rle(mask)}
    with pytest.raises(ValueError, match="expects an \\(H, W\\) mask"):
        encode_rle(np.zeros((2, 2, 3), bool))
