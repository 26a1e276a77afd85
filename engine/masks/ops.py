"""Measurements on one binary mask (and the boxes that prompted it), used as per-image quality signals.

All functions take an ``(H, W)`` boolean (or 0/1) mask; boxes are ``(N, 4)`` float ``xyxy`` pixel
corners. They return plain Python numbers. What each number means for label quality is in
:mod:`engine.labeling.quality`.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

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


def _regions(image_u8: np.ndarray, connectivity: int, min_area: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Connected regions of a 0/1 image: the label image, the ids ``(K,)`` of regions of at least
    ``min_area`` pixels, and their ``(K, 5)`` rows ``x0, y0, x1, y1, area``.

    (``cv2.connectedComponents`` + bincount + ``find_objects``: several times faster here than
    ``cv2.connectedComponentsWithStats``.)
    """
    count, labels = cv2.connectedComponents(image_u8, connectivity=connectivity)
    areas = np.bincount(labels.ravel(), minlength=count)
    ids = np.flatnonzero(areas[1:] >= min_area) + 1
    rows = np.zeros((len(ids), 5), np.int64)
    if len(ids):
        slices = ndimage.find_objects(labels, max_label=int(ids.max()))
        for row, index in zip(rows, ids, strict=True):
            ys, xs = slices[index - 1]
            row[:] = xs.start, ys.start, xs.stop, ys.stop, areas[index]
    return labels, ids, rows


def _parts(mask_u8: np.ndarray, min_part_frac: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-connected parts over ``min_part_frac`` of the mask: label image, ids, rows (see :func:`_regions`)."""
    return _regions(mask_u8, 8, max(1.0, min_part_frac * int(mask_u8.sum())))


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
    object. Holes framed by thin parts (a wheel inside its rim, the gaps of a chair back), holes at
    the centre of their part (a ring, a donut, a tyre: within 15% of the part's size) and pinholes
    (under 0.2% of the filled mask) don't count.
    """
    mask_u8 = _u8(mask)
    height, width = mask_u8.shape
    area = int(mask_u8.sum())
    if area == 0:
        return 0.0
    count, labels = cv2.connectedComponents(1 - mask_u8, connectivity=4)  # background regions (0: the mask)
    areas = np.bincount(labels.ravel(), minlength=count)
    enclosed = np.ones(count, bool)
    enclosed[0] = False
    enclosed[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = False  # reaching the border
    filled = area + int(areas[enclosed].sum())
    candidates = np.flatnonzero(enclosed & (areas >= 0.002 * filled))  # pinholes can't reach the term's threshold
    if not len(candidates):
        return 0.0
    slices = ndimage.find_objects(labels, max_label=int(candidates.max()))
    _, part_labels = cv2.connectedComponents(mask_u8, connectivity=8)
    solid = 0
    for index in candidates:
        ys, xs = slices[index - 1]
        x, y, x1, y1, hole_area = xs.start, ys.start, xs.stop, ys.stop, int(areas[index])
        first = x + int(np.argmax(labels[y, x:x1] == index))  # the hole's first pixel in raster order:
        part = part_labels == part_labels[y, first - 1]  # its left neighbour is mask, of the part enclosing it
        part_ys, part_xs = np.nonzero(part)
        hole_ys, hole_xs = np.nonzero(labels[y:y1, x:x1] == index)
        size = max(np.ptp(part_ys), np.ptp(part_xs)) + 1
        offset = (hole_ys.mean() + y - part_ys.mean(), hole_xs.mean() + x - part_xs.mean())
        if np.hypot(*offset) <= 0.15 * size:
            continue  # at the centre of its part: a ring, a donut
        radius = max(2, int(round(0.5 * np.sqrt(hole_area / np.pi))))
        top, bottom, left, right = max(0, y - radius), min(height, y1 + radius), max(0, x - radius), min(width, x1 + radius)
        hole = (labels[top:bottom, left:right] == index).astype(np.uint8)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        ring = cv2.dilate(hole, kernel).astype(bool) & ~hole.astype(bool)
        if ring.any() and mask_u8[top:bottom, left:right][ring].mean() >= solid_fill:
            solid += int(hole_area)
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


def count_parts(mask: np.ndarray, boxes_xyxy: np.ndarray | None = None, min_part_frac: float = MIN_PART_FRAC,
                margin: float = 0.05) -> tuple[int, int]:
    """``(boxed, stray)``: parts of the mask inside its boxes and parts no box accounts for.

    Parts are 8-connected regions over ``min_part_frac`` of the mask (smaller specks are ignored). A
    part is stray when most of it (over half its area) lies outside every box (grown by ``margin``).
    Without boxes the first part counts as boxed and every other one as stray.
    """
    mask_u8 = _u8(mask)
    labels, ids, parts = _parts(mask_u8, min_part_frac)
    grown = _clip_boxes(boxes_xyxy, mask_u8.shape, margin) if boxes_xyxy is not None else np.zeros((0, 4), np.int64)
    if not len(grown):
        return min(1, len(ids)), max(0, len(ids) - 1)
    inside = np.zeros_like(mask_u8, dtype=bool)
    for x0, y0, x1, y1 in grown:
        inside[y0:y1, x0:x1] = True
    inside_counts = np.bincount(labels[inside].ravel(), minlength=labels.max() + 1)
    stray = int(sum(inside_counts[i] * 2 < area for i, area in zip(ids, parts[:, 4], strict=True)))
    return len(ids) - stray, stray
