"""Measurements on one binary mask (and the boxes that prompted it), used as per-image quality signals.

All functions take an ``(H, W)`` boolean (or 0/1) mask; boxes are ``(N, 4)`` float ``xyxy`` pixel
corners. They return plain Python numbers. What each number means for label quality is in
:mod:`engine.labeling.quality`.
"""

from __future__ import annotations

import cv2
import numpy as np

# A connected part smaller than this share of the mask is a speck, not a part.
MIN_PART_FRAC = 0.01
_SLACK_PX = 2


def _u8(mask: np.ndarray) -> np.ndarray:
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    return np.ascontiguousarray(mask, dtype=bool).view(np.uint8)


def mask_area_fraction(mask: np.ndarray) -> float:
    """Share of pixels that are foreground, in [0, 1]."""
    return float(np.count_nonzero(mask)) / float(mask.size) if mask.size else 0.0


def connected_components(mask: np.ndarray) -> int:
    """Number of 8-connected foreground regions (0 for an empty mask)."""
    count, _ = cv2.connectedComponents(_u8(mask), connectivity=8)
    return int(count) - 1


def _parts(mask_u8: np.ndarray, min_part_frac: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels image, and the areas ``(K,)`` and boxes ``(K, 4)`` xyxy of the parts above ``min_part_frac``."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask_u8, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.int64)
    keep = np.flatnonzero(areas >= min_part_frac * max(int(areas.sum()), 1))
    x, y, w, h = (stats[1:, i][keep] for i in range(4))
    return labels, keep + 1, np.stack([x, y, x + w, y + h, areas[keep]], axis=1) if len(keep) else np.zeros((0, 5), np.int64)


def boundary_smoothness(mask: np.ndarray, tolerance_px: float = 1.5) -> float:
    """How clean the mask's outlines (outer and hole contours) are, in [0, 1]; 0 for an empty mask.

    Length of the outlines simplified to polygons that stay within ``tolerance_px`` of them
    (Douglas-Peucker; within 5% of the longest outline's length for a tiny mask, so a 2x2 blob keeps
    its corners while specks beside a large object still vanish),
    divided by their length as traced through the pixels. A clean outline loses
    only its pixel staircase (about 0.92-1.0, whatever the object's shape: thin parts, spokes and
    holes are real outline and stay); a ragged, noisy one loses its zig-zags (0.6-0.8).
    """
    contours, _ = cv2.findContours(_u8(mask), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    lengths = [cv2.arcLength(c, True) for c in contours]
    raw = sum(lengths)
    if raw == 0.0:
        return 1.0 if np.any(mask) else 0.0  # single pixels have no length to lose
    tolerance = min(tolerance_px, 0.05 * max(lengths))
    simple = sum(cv2.arcLength(cv2.approxPolyDP(c, tolerance, True), True) for c in contours)
    return float(min(1.0, simple / raw))


def rectangularity(mask: np.ndarray, min_part_frac: float = MIN_PART_FRAC) -> float:
    """How fully the mask's parts fill their own bounding rectangles, in [0, 1] (area-weighted mean).

    A box-shaped mask (SAM returning its prompt box) gives 1.0; objects in photos rarely exceed 0.95.
    Thin parts (under 8 px or 15% of their length across) fill any rectangle drawn around them and
    count as 0: a pole or a wire is no box.
    """
    _, _, parts = _parts(_u8(mask), min_part_frac)
    if not len(parts):
        return 0.0
    width, height = parts[:, 2] - parts[:, 0], parts[:, 3] - parts[:, 1]
    across = np.minimum(width, height)
    fills = parts[:, 4] / np.maximum(width * height, 1)
    fills = np.where((across >= 8) & (across >= 0.15 * np.maximum(width, height)), fills, 0.0)
    return float(np.average(fills, weights=parts[:, 4]))


def solid_hole_fraction(mask: np.ndarray, solid_fill: float = 0.8) -> float:
    """Share of the filled mask taken by holes punched into solid regions, in [0, 1].

    A hole is background enclosed by the mask (4-connected, not touching the image border). It counts
    when the ring around it (half its radius wide) is at least ``solid_fill`` mask: a gap in a solid
    object. Holes framed by thin parts (a wheel inside its rim, the gaps of a chair back) and holes
    at the centre of their part (a ring, a donut, a tyre: within 15% of the part's size) don't count.
    """
    mask_u8 = _u8(mask)
    height, width = mask_u8.shape
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(1 - mask_u8, connectivity=4)
    _, part_labels, part_stats, part_centroids = cv2.connectedComponentsWithStats(mask_u8, connectivity=8)
    filled = int(mask_u8.sum())
    solid = 0
    for index in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[index])
        if x == 0 or y == 0 or x + w == width or y + h == height:
            continue  # background reaching the border is no hole
        filled += area
        first = x + int(np.argmax(labels[y, x : x + w] == index))  # the hole's first pixel in raster order:
        part = int(part_labels[y, first - 1])  # its left neighbour is mask, of the part that encloses it
        size = max(part_stats[part, 2], part_stats[part, 3])
        if np.hypot(*(centroids[index] - part_centroids[part])) <= 0.15 * size:
            continue
        radius = max(2, int(round(0.5 * np.sqrt(area / np.pi))))
        y0, y1, x0, x1 = max(0, y - radius), min(height, y + h + radius), max(0, x - radius), min(width, x + w + radius)
        hole = (labels[y0:y1, x0:x1] == index).astype(np.uint8)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        ring = cv2.dilate(hole, kernel).astype(bool) & ~hole.astype(bool)
        if ring.any() and mask_u8[y0:y1, x0:x1][ring].mean() >= solid_fill:
            solid += area
    return solid / filled if filled else 0.0


def _clip_boxes(boxes_xyxy: np.ndarray, size_hw: tuple[int, int], margin: float) -> np.ndarray:
    """Integer ``(N, 4)`` boxes grown by ``margin`` of their size, clipped to the image; empty ones dropped."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    size = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    grown = boxes + margin * size * np.array([-1, -1, 1, 1])
    limit = np.array([size_hw[1], size_hw[0]] * 2)
    out = np.clip(np.concatenate([np.floor(grown[:, :2]), np.ceil(grown[:, 2:])], axis=1), 0, limit).astype(np.int64)
    return out[(out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])]


def box_agreement(mask: np.ndarray, boxes_xyxy: np.ndarray, margin: float = 0.05) -> tuple[float, float]:
    """How well the mask agrees with the boxes that prompted it: ``(support, reach)``, each in [0, 1].

    ``support``: share of the mask inside the union of the boxes (each grown by ``margin`` of its
    size): a mask leaking out of its boxes (loose outline, background, a second object) has low
    support. ``reach``: per box, the share of the box's width times the share of its height that the
    mask's extent inside the box spans (2 px of slack each way for thin objects), averaged with box
    areas as weights: a mask that leaves part of its box uncovered (tight outline, a missing part,
    an empty box) has low reach. Both are 1.0 when there are no boxes.
    """
    mask_u8 = _u8(mask)
    grown = _clip_boxes(boxes_xyxy, mask_u8.shape, margin)
    tight = _clip_boxes(boxes_xyxy, mask_u8.shape, 0.0)
    if not len(tight):
        return 1.0, 1.0
    inside = np.zeros_like(mask_u8)
    for x0, y0, x1, y1 in grown:
        inside[y0:y1, x0:x1] = 1
    total = int(mask_u8.sum())
    support = float(np.count_nonzero(mask_u8 & inside)) / total if total else 0.0
    reaches, weights = [], []
    for x0, y0, x1, y1 in tight:
        crop = mask_u8[y0:y1, x0:x1]
        rows, cols = np.flatnonzero(crop.any(axis=1)), np.flatnonzero(crop.any(axis=0))
        if len(rows):
            span_y = min(1.0, (rows[-1] - rows[0] + 1 + _SLACK_PX) / crop.shape[0])
            span_x = min(1.0, (cols[-1] - cols[0] + 1 + _SLACK_PX) / crop.shape[1])
            reaches.append(span_y * span_x)
        else:
            reaches.append(0.0)
        weights.append(crop.size)
    return support, float(np.average(reaches, weights=weights))


def stray_parts(mask: np.ndarray, boxes_xyxy: np.ndarray | None = None, min_part_frac: float = MIN_PART_FRAC,
                margin: float = 0.05) -> int:
    """Parts of the mask that no box accounts for (specks below ``min_part_frac`` of the mask ignored).

    With boxes: parts lying mostly (over half their area) outside every box, so several parts inside
    the boxes of a ``union`` label are fine. Without boxes: every part beyond the first.
    """
    mask_u8 = _u8(mask)
    labels, ids, parts = _parts(mask_u8, min_part_frac)
    grown = _clip_boxes(boxes_xyxy, mask_u8.shape, margin) if boxes_xyxy is not None else np.zeros((0, 4), np.int64)
    if not len(grown):
        return max(0, len(ids) - 1)
    inside = np.zeros_like(mask_u8, dtype=bool)
    for x0, y0, x1, y1 in grown:
        inside[y0:y1, x0:x1] = True
    inside_counts = np.bincount(labels[inside].ravel(), minlength=labels.max() + 1)
    return int(sum(inside_counts[i] * 2 < area for i, area in zip(ids, parts[:, 4], strict=True)))
