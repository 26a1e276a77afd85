"""Per-image quality signals of a pseudo-label, and the overall ``quality_score``.

``quality_score`` is the geometric mean of six terms, each in [0, 1]:

* ``best_box_score``: the grounder's confidence in its best box;
* ``sam_pred_iou``: SAM's own predicted IoU (mean over used boxes), clipped to [0, 1];
* ``stability_score``: SAM's stability (mean over used boxes);
* area term: 1 for a mask covering 1%..80% of the image, falling linearly to 0 at 0% and 100%;
* fragment term: ``1 / sqrt(connected_components)``;
* ``boundary_smoothness`` of the merged mask.

A zero in any term gives 0: an empty, full-frame or unsupported mask is never ranked as good.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.masks import boundary_smoothness, connected_components, mask_area_fraction

AREA_LOW, AREA_HIGH = 0.01, 0.80


@dataclass(frozen=True)
class QualitySignals:
    best_box_score: float
    box_count: int
    sam_pred_iou: float
    stability_score: float
    mask_area_frac: float
    components: int
    boundary_smoothness: float
    quality_score: float


def area_term(area_frac: float) -> float:
    """1 inside [AREA_LOW, AREA_HIGH], linear to 0 at 0 and at 1."""
    if area_frac <= 0.0 or area_frac >= 1.0:
        return 0.0
    if area_frac < AREA_LOW:
        return area_frac / AREA_LOW
    if area_frac > AREA_HIGH:
        return (1.0 - area_frac) / (1.0 - AREA_HIGH)
    return 1.0


def quality_score(
    best_box_score: float, sam_pred_iou: float, stability: float, area_frac: float, components: int, smoothness: float
) -> float:
    """Geometric mean of the six terms described in the module docstring."""
    terms = [
        best_box_score,
        min(max(sam_pred_iou, 0.0), 1.0),
        stability,
        area_term(area_frac),
        1.0 / math.sqrt(components) if components > 0 else 0.0,
        smoothness,
    ]
    terms = [min(max(float(t), 0.0), 1.0) for t in terms]
    if min(terms) == 0.0:
        return 0.0
    return float(math.exp(sum(math.log(t) for t in terms) / len(terms)))


def measure(mask: np.ndarray, box_scores: np.ndarray, pred_iou: np.ndarray, stability: np.ndarray) -> QualitySignals:
    """All signals for one merged ``(H, W)`` mask and the per-box values that made it."""
    area = mask_area_fraction(mask)
    components = connected_components(mask)
    smoothness = boundary_smoothness(mask)
    best = float(box_scores.max()) if len(box_scores) else 0.0
    iou = float(pred_iou.mean()) if len(pred_iou) else 0.0
    stab = float(stability.mean()) if len(stability) else 0.0
    return QualitySignals(
        best_box_score=best,
        box_count=int(len(box_scores)),
        sam_pred_iou=iou,
        stability_score=stab,
        mask_area_frac=area,
        components=components,
        boundary_smoothness=smoothness,
        quality_score=quality_score(best, iou, stab, area, components, smoothness),
    )
