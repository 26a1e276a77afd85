"""Documented label corruptions: foundation-model-style errors made from true masks.

Used by ``benchmarks/refine_quality.py`` (noisy starting labels with known truth) and by the
refinement gate's self-check probe (:mod:`engine.refine.gate`), which corrupts held-out source labels
and checks that refinement moves them back. Each function takes an ``(H, W)`` bool mask and a numpy
``Generator`` and returns a new ``(H, W)`` bool mask; an empty mask comes back unchanged. Sizes are
relative to the object (its area, or for outlines the diameter of the disk of its area), so they
mean the same on a 64 px thumbnail and a 4000 px photo. The kinds, each an error GroundingDINO + SAM really make:

- ``box``: the mask is its bounding box, 0-8% looser per side (SAM falls back to the box prompt).
- ``shifted_box``: the bounding box shifted by up to 15% of its size (box prompt, wrong box).
- ``missing_part``: the part of the object beyond a random straight cut is lost (15-45% of its area;
  SAM segments a sub-part, e.g. a person's torso without the legs).
- ``extra_region``: an irregular blob attached to the object, 20-60% of its area (SAM swallows the
  neighbouring object or a patch of background).
- ``false_blobs``: 1-2 irregular blobs elsewhere in the background (a spurious second object).
- ``dilate``: a loose outline: the boundary moves out by 2-8% of the object's diameter, by an amount that
  varies smoothly along the boundary (not a clean morphological dilation).
- ``erode``: a tight outline: the boundary moves in by 2-6% of the diameter (thin parts may vanish).
- ``holes``: 1-3 irregular holes inside the object (each 3-10% of its area).

:data:`KINDS` lists them; :func:`corrupt_mask` applies one, chosen by ``kind`` or cycled by ``index``.
Function names are stable (other benchmarks and the quality signals' checks call them).
"""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ("box", "shifted_box", "missing_part", "extra_region", "false_blobs", "dilate", "erode", "holes")


def _smooth_noise(shape: tuple[int, int], rng: np.random.Generator, wavelength: float) -> np.ndarray:
    """A smooth random field, ``(H, W) float32``, zero mean and unit std, varying over ``wavelength`` px."""
    height, width = shape
    step = max(2.0, wavelength / 2)
    coarse = rng.standard_normal((int(np.ceil(height / step)) + 2, int(np.ceil(width / step)) + 2)).astype(np.float32)
    field = cv2.resize(coarse, (width + int(2 * step), height + int(2 * step)), interpolation=cv2.INTER_CUBIC)
    field = field[int(step) : int(step) + height, int(step) : int(step) + width]
    return (field - field.mean()) / (field.std() + 1e-6)


def _signed_distance(mask: np.ndarray) -> np.ndarray:
    """Signed distance to the boundary: positive inside, negative outside (px, float32)."""
    u8 = mask.astype(np.uint8)
    inside = cv2.distanceTransform(u8, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - u8, cv2.DIST_L2, 5)
    return inside - outside


def _equivalent_diameter(mask: np.ndarray) -> float:
    """Diameter of the disk with the mask's area, px (robust to multi-part masks and thin parts)."""
    return float(2.0 * np.sqrt(max(1, np.count_nonzero(mask)) / np.pi))


def _wobbly_offset(mask: np.ndarray, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Per-pixel outline offset in px: ``U(low, high) * diameter`` on average, +-50% along the boundary."""
    scale = _equivalent_diameter(mask)
    mean = rng.uniform(low, high) * scale
    return mean * (1.0 + 0.5 * np.clip(_smooth_noise(mask.shape, rng, 0.3 * scale), -1.5, 1.5))


def dilate(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Loose outline: grow by 2-8% of the object's diameter, unevenly along the boundary."""
    if not mask.any():
        return mask.copy()
    return _signed_distance(mask) > -_wobbly_offset(mask, rng, 0.02, 0.08)


def erode(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Tight outline: shrink by 2-6% of the object's diameter, unevenly along the boundary."""
    if not mask.any():
        return mask.copy()
    return _signed_distance(mask) > _wobbly_offset(mask, rng, 0.02, 0.06)


def _blob(shape: tuple[int, int], centre: tuple[float, float], radius: float, rng: np.random.Generator) -> np.ndarray:
    """An irregular blob: an ellipse (axes ratio up to 2) with a wobbly outline, ``(H, W) bool``."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle, ratio = rng.uniform(0, np.pi), rng.uniform(1.0, 2.0)
    dy, dx = ys - centre[0], xs - centre[1]
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / (radius * np.sqrt(ratio))
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) * np.sqrt(ratio) / radius
    wobble = 0.25 * np.clip(_smooth_noise(shape, rng, max(4.0, radius)), -2, 2)
    return np.sqrt(u * u + v * v) < 1.0 + wobble


def holes(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1-3 irregular holes inside the object, each about 3-10% of its area."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask.copy()
    inner = np.argwhere(_signed_distance(mask) > 0.05 * _equivalent_diameter(mask))
    points = inner if len(inner) else np.stack([ys, xs], 1)
    out = mask.copy()
    for _ in range(int(rng.integers(1, 4))):
        centre = points[rng.integers(len(points))]
        radius = np.sqrt(rng.uniform(0.03, 0.10) * ys.size / np.pi)
        out &= ~_blob(mask.shape, (float(centre[0]), float(centre[1])), radius, rng)
    return out


def false_blobs(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1-2 irregular blobs in the background, away from the object (each 10-40% of its area)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask.copy()
    far = np.argwhere(_signed_distance(mask) < -0.1 * _equivalent_diameter(mask))
    if not len(far):
        return mask.copy()
    out = mask.copy()
    for _ in range(int(rng.integers(1, 3))):
        centre = far[rng.integers(len(far))]
        radius = max(2.0, np.sqrt(rng.uniform(0.1, 0.4) * ys.size / np.pi))
        out |= _blob(mask.shape, (float(centre[0]), float(centre[1])), radius, rng)
    return out


def extra_region(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An irregular region attached to the object's outline, 20-60% of its area."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask.copy()
    u8 = mask.astype(np.uint8)
    edge = np.argwhere(u8 - cv2.erode(u8, np.ones((3, 3), np.uint8)) > 0)
    anchor = edge[rng.integers(len(edge))].astype(np.float32)
    radius = max(2.0, np.sqrt(rng.uniform(0.2, 0.6) * ys.size / np.pi))
    direction = anchor - np.array([ys.mean(), xs.mean()], np.float32)
    direction /= np.linalg.norm(direction) + 1e-6
    centre = anchor + 0.6 * radius * direction  # mostly outside, overlapping the outline
    return mask | _blob(mask.shape, (float(centre[0]), float(centre[1])), radius, rng)


def missing_part(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Drop the object's pixels beyond a random straight cut (15-45% of its area)."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return mask.copy()
    angle = rng.uniform(0, 2 * np.pi)
    projection = ys * np.sin(angle) + xs * np.cos(angle)
    cut = np.quantile(projection, 1.0 - rng.uniform(0.15, 0.45))
    out = mask.copy()
    drop = projection > cut
    out[ys[drop], xs[drop]] = False
    return out


def _box(mask: np.ndarray, grow: float, shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    bh, bw = y1 - y0, x1 - x0
    dy, dx = int(round(shift[0] * bh)), int(round(shift[1] * bw))
    gy, gx = int(round(grow * bh)), int(round(grow * bw))
    height, width = mask.shape
    out = np.zeros_like(mask, dtype=bool)
    out[max(0, y0 - gy + dy) : min(height, y1 + gy + dy), max(0, x0 - gx + dx) : min(width, x1 + gx + dx)] = True
    return out


def box(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The object's bounding box, 0-8% looser on each side."""
    if not mask.any():
        return mask.copy()
    return _box(mask, rng.uniform(0.0, 0.08))


def shifted_box(mask: np.ndarray, rng: np.random.Generator, max_shift: float = 0.15) -> np.ndarray:
    """The object's bounding box shifted by up to ``max_shift`` of its size along each axis."""
    if not mask.any():
        return mask.copy()
    return _box(mask, 0.0, (rng.uniform(-max_shift, max_shift), rng.uniform(-max_shift, max_shift)))


_FUNCS = {"box": box, "shifted_box": shifted_box, "missing_part": missing_part, "extra_region": extra_region,
          "false_blobs": false_blobs, "dilate": dilate, "erode": erode, "holes": holes}


def corrupt_mask(mask: np.ndarray, rng: np.random.Generator, kind: str | None = None, index: int = 0) -> tuple[np.ndarray, str]:
    """Corrupt an ``(H, W)`` mask with ``kind`` (default: ``KINDS[index % len(KINDS)]``).

    Returns ``(corrupted (H, W) bool, kind)``. Raises ValueError for another shape or an unknown kind.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise ValueError(f"corrupt_mask expects an (H, W) mask, got shape {getattr(mask, 'shape', None)}")
    kind = kind or KINDS[index % len(KINDS)]
    if kind not in _FUNCS:
        raise ValueError(f"unknown corruption {kind!r}; known: {KINDS}")
    return _FUNCS[kind](mask.astype(bool), rng), kind

