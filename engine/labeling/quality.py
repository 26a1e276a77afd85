"""Per-image quality signals of a pseudo-label, the mask ``shape_score`` and the overall ``quality_score``.

``quality_score = sqrt(model_confidence * shape_score)``, in [0, 1], where ``model_confidence`` is the
geometric mean of the grounder's best box score, SAM's predicted IoU (mean over the boxes, clipped
to [0, 1]) and SAM's stability score, and ``shape_score`` is the geometric mean of seven mask-shape
terms, each in [0, 1] with 1 meaning "no sign of a labelling error":

* ``area``: 1 for a mask covering 1%..80% of the image, linear to 0 at 0% and 100%;
* ``fragments``: ``1 / sqrt(1 + stray + extra / 2)``, counting parts over 1% of the mask: a stray
  part lies mostly outside every prompt box (an extra region); ``extra`` are the parts inside the
  boxes beyond one per box. So the N parts of an N-box ``box_policy: union`` label cost nothing and
  an object split in two inside its box costs little (0.82); without boxes every part beyond the
  first is stray;
* ``support``: the mask stays inside its boxes (grown by 5%): loose outlines and leaked background
  fall here; 1 up to 3% outside, then -3 per unit outside (floor 0.05);
* ``reach``: the mask spans its boxes: tight outlines, missing parts and boxes SAM left empty fall
  here; ``min(1, reach / 0.8) ** 2`` (floor 0.05);
* ``box_shape``: 1 while the mask's parts fill at most 90% of their bounding rectangles, falling to
  0.25 at 100%: SAM's box-shaped failure (a truly rectangular object pays a mild price);
* ``holes``: 1 up to 2% of the filled mask in holes punched into solid regions, falling to 0.25 at
  17%; holes framed by thin parts (wheels, chair backs) don't count;
* ``smoothness``: :func:`engine.masks.boundary_smoothness` (outline length kept by a 1.5 px polygon
  fit), mapped 0.75 -> 0 .. 0.9 -> 1: only ragged, noisy outlines lose; thin objects don't.

A zero in the area term (empty or full-frame mask) or in a model term gives 0: such a label is never
ranked as good. On the true masks of DUTS-TE every shape term has a median of 1.0 and corrupted
copies rank below them (``benchmarks/quality_signals.py``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from engine.masks import (
    boundary_smoothness,
    box_agreement,
    connected_components,
    count_parts,
    mask_area_fraction,
    rectangularity,
    solid_hole_fraction,
)

AREA_LOW, AREA_HIGH = 0.01, 0.80
SUPPORT_SLACK, SUPPORT_SLOPE = 0.03, 3.0
REACH_FULL = 0.8
BOX_FILL_FROM = 0.9
HOLES_FROM, HOLES_SPAN = 0.02, 0.15
SMOOTH_ZERO, SMOOTH_FULL = 0.75, 0.9
FLOOR = 0.05


@dataclass(frozen=True)
class ShapeTerms:
    """The seven mask-shape terms, each in [0, 1] (see the module docstring)."""

    area: float
    fragments: float
    support: float
    reach: float
    box_shape: float
    holes: float
    smoothness: float

    @property
    def score(self) -> float:
        """Geometric mean of the terms (0 when any is 0)."""
        return _geometric_mean(list(asdict(self).values()))


@dataclass(frozen=True)
class QualitySignals:
    best_box_score: float
    box_count: int
    sam_pred_iou: float
    stability_score: float
    mask_area_frac: float
    components: int
    boundary_smoothness: float
    shape_score: float
    quality_score: float


def _geometric_mean(values: list[float]) -> float:
    terms = [min(max(float(v), 0.0), 1.0) for v in values]
    if not terms or min(terms) == 0.0:
        return 0.0
    return float(math.exp(sum(math.log(t) for t in terms) / len(terms)))


def area_term(area_frac: float) -> float:
    """1 inside [AREA_LOW, AREA_HIGH], linear to 0 at 0 and at 1."""
    if area_frac <= 0.0 or area_frac >= 1.0:
        return 0.0
    if area_frac < AREA_LOW:
        return area_frac / AREA_LOW
    if area_frac > AREA_HIGH:
        return (1.0 - area_frac) / (1.0 - AREA_HIGH)
    return 1.0


def fragments_term(boxed: int, stray: int, box_count: int) -> float:
    """``1 / sqrt(1 + stray + extra / 2)`` with ``extra`` the boxed parts beyond one per box."""
    return 1.0 / math.sqrt(1.0 + stray + 0.5 * max(0, boxed - max(1, box_count)))


def support_term(support: float) -> float:
    return float(np.clip(1.0 - SUPPORT_SLOPE * max(0.0, (1.0 - support) - SUPPORT_SLACK), FLOOR, 1.0))


def reach_term(reach: float) -> float:
    return float(np.clip(reach / REACH_FULL, 0.0, 1.0) ** 2) if reach > 0 else FLOOR


def box_shape_term(rect: float) -> float:
    return float(1.0 - 0.75 * np.clip((rect - BOX_FILL_FROM) / (1.0 - BOX_FILL_FROM), 0.0, 1.0))


def holes_term(solid_holes: float) -> float:
    return float(1.0 - 0.75 * np.clip((solid_holes - HOLES_FROM) / HOLES_SPAN, 0.0, 1.0))


def smoothness_term(smoothness: float) -> float:
    return float(np.clip((smoothness - SMOOTH_ZERO) / (SMOOTH_FULL - SMOOTH_ZERO), 0.0, 1.0))


def shape_terms(mask: np.ndarray, boxes_xyxy: np.ndarray | None = None) -> ShapeTerms:
    """The shape terms of one merged ``(H, W)`` bool mask and its ``(N, 4)`` xyxy prompt boxes (or none;
    any sequence of 4-number boxes, e.g. a catalog row's ``boxes_xyxy``)."""
    if not np.any(mask):
        return ShapeTerms(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    boxes = np.asarray([list(b) for b in boxes_xyxy] if boxes_xyxy is not None else [], dtype=np.float64).reshape(-1, 4)
    support, reach = box_agreement(mask, boxes)
    return ShapeTerms(
        area=area_term(mask_area_fraction(mask)),
        fragments=fragments_term(*count_parts(mask, boxes), box_count=len(boxes)),
        support=support_term(support),
        reach=max(FLOOR, reach_term(reach)),
        box_shape=box_shape_term(rectangularity(mask)),
        holes=holes_term(solid_hole_fraction(mask)),
        smoothness=smoothness_term(boundary_smoothness(mask)),
    )


def quality_score(best_box_score: float, sam_pred_iou: float, stability: float, shape_score: float) -> float:
    """``sqrt(model_confidence * shape_score)``; see the module docstring. 0 when any input is 0."""
    confidence = _geometric_mean([best_box_score, sam_pred_iou, stability])
    return _geometric_mean([confidence, shape_score])


def mask_signals(mask: np.ndarray, boxes_xyxy: np.ndarray | None = None) -> dict[str, float | int]:
    """The catalog's mask columns for one ``(H, W)`` bool mask: area fraction, components,
    boundary smoothness and shape score."""
    return {
        "mask_area_frac": mask_area_fraction(mask),
        "components": connected_components(mask),
        "boundary_smoothness": boundary_smoothness(mask),
        "shape_score": shape_terms(mask, boxes_xyxy).score,
    }


def measure(
    mask: np.ndarray,
    box_scores: np.ndarray,
    pred_iou: np.ndarray,
    stability: np.ndarray,
    boxes_xyxy: np.ndarray | None = None,
) -> QualitySignals:
    """All signals for one merged ``(H, W)`` mask and the per-box values (and boxes) that made it."""
    best = float(box_scores.max()) if len(box_scores) else 0.0
    iou = float(pred_iou.mean()) if len(pred_iou) else 0.0
    stab = float(stability.mean()) if len(stability) else 0.0
    signals = mask_signals(mask, boxes_xyxy)
    return QualitySignals(
        best_box_score=best,
        box_count=int(len(box_scores)),
        sam_pred_iou=iou,
        stability_score=stab,
        quality_score=quality_score(best, iou, stab, signals["shape_score"]),
        **signals,
    )
