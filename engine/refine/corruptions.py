"""Documented label corruptions: how the refinement benchmark makes noisy labels from true masks.

Each function takes an ``(H, W)`` bool mask and a numpy ``Generator`` and returns a new bool mask:

- ``erode`` / ``dilate``: the outline moves in / out by ``r`` px (elliptical kernel), the typical
  error of a segmenter with a too tight or too loose threshold;
- ``holes``: 1-3 disks (radius ~8-15% of the object's size) cut out of the object;
- ``false_blobs``: 1-3 disks added in the background (a spurious second object);
- ``shifted_box``: the mask replaced by its bounding box, shifted by up to 15% of the box size
  (what a box prompt without a good segmenter gives).

:func:`corrupt_mask` applies one kind chosen by ``kind`` (or cycles through the kinds by index).
"""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ("erode", "dilate", "holes", "false_blobs", "shifted_box")


def _object_scale(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 0.1 * min(mask.shape)
    return float(max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1))


def _kernel(radius: int) -> np.ndarray:
    side = 2 * max(1, radius) + 1
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))


def erode(mask: np.ndarray, rng: np.random.Generator, frac: float = 0.12) -> np.ndarray:
    radius = max(1, int(round(frac * _object_scale(mask) * rng.uniform(0.7, 1.3))))
    return cv2.erode(mask.astype(np.uint8), _kernel(radius)).astype(bool)


def dilate(mask: np.ndarray, rng: np.random.Generator, frac: float = 0.12) -> np.ndarray:
    radius = max(1, int(round(frac * _object_scale(mask) * rng.uniform(0.7, 1.3))))
    return cv2.dilate(mask.astype(np.uint8), _kernel(radius)).astype(bool)


def _disks(shape: tuple[int, int], centres: np.ndarray, radius: int) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for cy, cx in centres:
        cv2.circle(out, (int(cx), int(cy)), radius, 1, -1)
    return out.astype(bool)


def holes(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask.copy()
    picks = rng.integers(ys.size, size=int(rng.integers(1, 4)))
    radius = max(1, int(round(rng.uniform(0.08, 0.15) * _object_scale(mask))))
    return mask & ~_disks(mask.shape, np.stack([ys[picks], xs[picks]], 1), radius)


def false_blobs(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(~mask)
    if ys.size == 0:
        return mask.copy()
    picks = rng.integers(ys.size, size=int(rng.integers(1, 4)))
    radius = max(2, int(round(rng.uniform(0.06, 0.12) * min(mask.shape))))
    return mask | _disks(mask.shape, np.stack([ys[picks], xs[picks]], 1), radius)


def shifted_box(mask: np.ndarray, rng: np.random.Generator, max_shift: float = 0.15) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask.copy()
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    dy = int(round(rng.uniform(-max_shift, max_shift) * (y1 - y0)))
    dx = int(round(rng.uniform(-max_shift, max_shift) * (x1 - x0)))
    out = np.zeros_like(mask, dtype=bool)
    height, width = mask.shape
    out[max(0, y0 + dy) : min(height, y1 + dy), max(0, x0 + dx) : min(width, x1 + dx)] = True
    return out


_FUNCS = {"erode": erode, "dilate": dilate, "holes": holes, "false_blobs": false_blobs, "shifted_box": shifted_box}


def corrupt_mask(mask: np.ndarray, rng: np.random.Generator, kind: str | None = None, index: int = 0) -> tuple[np.ndarray, str]:
    """Corrupt an ``(H, W)`` bool mask with ``kind`` (default: ``KINDS[index % 5]``); returns (mask, kind)."""
    if mask.ndim != 2:
        raise ValueError(f"corrupt_mask expects an (H, W) mask, got shape {mask.shape}")
    kind = kind or KINDS[index % len(KINDS)]
    if kind not in _FUNCS:
        raise ValueError(f"unknown corruption {kind!r}; known: {KINDS}")
    return _FUNCS[kind](mask.astype(bool), rng), kind


# --- Added for benchmarks/quality_signals.py (kept out of KINDS so the refinement benchmark's cycle is unchanged).


def missing_part(mask: np.ndarray, rng: np.random.Generator, low: float = 0.2, high: float = 0.45) -> np.ndarray:
    """The object with one side cut away: a straight cut in a random direction removes ``low``..``high``
    of its area (SAM segmenting only a part: the upper body, the cab of a truck)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask.copy()
    angle = rng.uniform(0.0, 2.0 * np.pi)
    direction = np.array([np.sin(angle), np.cos(angle)])
    cut = np.quantile(ys * direction[0] + xs * direction[1], 1.0 - rng.uniform(low, high))
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    return mask & ((yy * direction[0] + xx * direction[1]) <= cut)
