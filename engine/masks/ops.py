"""Measurements on one binary mask, used as per-image quality signals.

All functions take an ``(H, W)`` boolean (or 0/1) mask and return plain Python numbers.
"""

from __future__ import annotations

import cv2
import numpy as np


def mask_area_fraction(mask: np.ndarray) -> float:
    """Share of pixels that are foreground, in [0, 1]."""
    return float(np.count_nonzero(mask)) / float(mask.size) if mask.size else 0.0


def connected_components(mask: np.ndarray) -> int:
    """Number of 8-connected foreground regions (0 for an empty mask)."""
    count, _ = cv2.connectedComponents(np.ascontiguousarray(mask, dtype=np.uint8), connectivity=8)
    return int(count) - 1


def _perimeter(mask_u8: np.ndarray) -> float:
    contours, _ = cv2.findContours(mask_u8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return float(sum(cv2.arcLength(contour, True) for contour in contours))


def boundary_smoothness(mask: np.ndarray, kernel_frac: float = 0.02) -> float:
    """How smooth the mask's outline is, in (0, 1]: 1 for a clean outline, low for a ragged one.

    Defined as perimeter(smoothed mask) / perimeter(mask), where the smoothed mask is a
    morphological opening then closing with an elliptical kernel of ``kernel_frac`` of the image's
    shorter side (at least 3 px). Jagged, noisy outlines lose length when smoothed. An empty mask
    gives 0.
    """
    mask_u8 = np.ascontiguousarray(mask, dtype=np.uint8)
    raw = _perimeter(mask_u8)
    if raw == 0.0:
        return 0.0
    side = max(3, int(round(min(mask.shape) * kernel_frac)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    smooth = cv2.morphologyEx(cv2.morphologyEx(mask_u8, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)
    return float(min(1.0, _perimeter(smooth) / raw))
