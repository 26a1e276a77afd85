"""COCO run-length encoding of binary masks (pycocotools), as stored in the label shards.

A stored mask is the compressed RLE ``counts`` string plus its ``size_hw``; together they are a
COCO RLE object ``{"size": [h, w], "counts": ...}``.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask


def encode_rle(mask: np.ndarray) -> str:
    """Encode an ``(H, W)`` boolean/0-1 mask into a compressed COCO RLE ``counts`` string."""
    if mask.ndim != 2:
        raise ValueError(f"encode_rle expects an (H, W) mask, got shape {mask.shape}")
    fortran = np.asfortranarray(mask.astype(np.uint8, copy=False))
    return coco_mask.encode(fortran)["counts"].decode("ascii")


def decode_rle(counts: str, size_hw: tuple[int, int]) -> np.ndarray:
    """Decode a compressed RLE ``counts`` string into an ``(H, W)`` boolean mask."""
    height, width = int(size_hw[0]), int(size_hw[1])
    rle = {"size": [height, width], "counts": counts.encode("ascii")}
    return coco_mask.decode(rle).astype(bool)


def rle_area(counts: str, size_hw: tuple[int, int]) -> int:
    """Foreground pixel count of one RLE (called per RLE: pycocotools overflows on long lists)."""
    rle = {"size": [int(size_hw[0]), int(size_hw[1])], "counts": counts.encode("ascii")}
    return int(coco_mask.area(rle))


def to_coco_rle(counts: str, size_hw: tuple[int, int]) -> dict:
    """The JSON-ready COCO RLE object for a stored mask."""
    return {"size": [int(size_hw[0]), int(size_hw[1])], "counts": counts}
