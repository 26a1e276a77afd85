"""From a refined training-size label to the written full-resolution mask: only confident change.

Refinement works on small square labels (``refine.size``, e.g. 64 or 320 px), but the source masks
(SAM's, or any imported ones) have the image's full resolution. Upsampling the small label back
would blur every mask (IoU ~0.90 after a 64 px round trip on DUTS) and count that blur as change.
Instead:

1. ``delta = refined - init``, where ``init`` is the source mask resized to the training size (the
   label bank's starting value); resampling error cancels out in the difference.
2. ``delta`` is upsampled to full size; a pixel of the source mask flips only where the change is
   confident: ``source + delta`` crosses 0.5 by more than ``margin`` (so ``|delta| > 0.5 + margin``).
   No change, no flip: a round trip returns the source mask bit for bit.
3. Inside the changed regions (grown by one training-size pixel), the new boundary is placed by the
   pixel-adaptive refiner on the full-resolution image (``guide``), so it follows image edges instead
   of the coarse grid. Outside them, the source mask is kept as is.
4. Per-label bounds: a refined label that collapsed to (nearly) nothing or (nearly) the whole image,
   a (nearly) empty or full written mask, or a change of more than ``max_change`` of the image's
   pixels keeps the source mask (:func:`update_label` says which and why). Such results are never
   written with ``status = ok``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from engine.refine.data import upsample_label
from engine.refine.par import pixel_adaptive_refine
from engine.refine.params import PARParams, UpdateParams

ACTIONS = ("refined", "unchanged", "kept_source", "copied", "rejected")
"""``refine_action`` values: ``refined`` (the mask changed), ``unchanged`` (refinement agreed with the
source), ``kept_source`` (a change was refused: degenerate, too large, or the run's gate failed),
``copied`` (nothing to refine: no source mask, or an image that could not be read), ``rejected``
(the source mask itself covers (nearly) the whole image: written as ``no_object``, see
:func:`engine.refine.records.reject_full_mask`)."""


@dataclass(frozen=True)
class LabelUpdate:
    """The written mask and what happened: ``mask`` ``(H, W) bool``, ``action`` in :data:`ACTIONS`,
    ``reason`` (why a change was refused, else None) and ``change`` (fraction of pixels changed)."""

    mask: np.ndarray
    action: str
    reason: str | None
    change: float


def confident_change(source: np.ndarray, init: np.ndarray, refined: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Full-size change map and soft target.

    Args:
        source: ``(H, W)`` bool, the source mask.
        init: ``(S, S)`` float in [0, 1], the source mask at training size.
        refined: ``(S, S)`` float in [0, 1], the refined label at training size.
        margin: confidence margin in [0, 0.5).

    Returns:
        ``changed`` ``(H, W)`` bool (pixels to flip) and ``soft`` ``(H, W)`` float in [0, 1]
        (``source + upsampled delta``).
    """
    if init.shape != refined.shape:
        raise ValueError(f"init {init.shape} and refined {refined.shape} labels must have the same size")
    delta = upsample_label(refined.astype(np.float32) - init.astype(np.float32), source.shape)
    soft = np.clip(source.astype(np.float32) + delta, 0.0, 1.0)
    threshold = 0.5 + margin
    changed = (source & (delta < -threshold)) | (~source & (delta > threshold))
    return changed, soft


def _grown(changed: np.ndarray, cell_px: int) -> np.ndarray:
    side = 2 * max(1, cell_px) + 1
    return cv2.dilate(changed.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))) > 0


def _guided(image: np.ndarray, soft: np.ndarray, region: np.ndarray, par: PARParams, max_side: int) -> np.ndarray:
    """PAR of ``soft`` on ``image`` inside ``region``'s bounding box (downsized to ``max_side`` at most)."""
    ys, xs = np.nonzero(region)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop_img, crop_soft = image[y0:y1, x0:x1], soft[y0:y1, x0:x1]
    height, width = crop_soft.shape
    factor = min(1.0, max_side / max(height, width))
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        crop_img = cv2.resize(crop_img, size, interpolation=cv2.INTER_AREA)
        crop_soft = cv2.resize(crop_soft, size, interpolation=cv2.INTER_AREA)
    # copies: decoded images may be read-only arrays, which torch will not wrap
    img_t = torch.from_numpy(np.array(crop_img)).permute(2, 0, 1)[None].float() / 255.0
    soft_t = torch.from_numpy(np.array(crop_soft, dtype=np.float32))[None, None]
    refined = pixel_adaptive_refine(img_t, soft_t, par.dilations, par.iterations, par.temperature, par.pos_weight,
                                    normalize=False)[0, 0].numpy()
    if factor < 1.0:
        refined = cv2.resize(refined, (width, height), interpolation=cv2.INTER_LINEAR)
    out = soft > 0.5
    out[y0:y1, x0:x1] = refined > 0.5
    return out


def _degenerate(area: float, params: UpdateParams) -> str | None:
    """Why a mask covering ``area`` of the image is no salient-object label (None if it is one)."""
    if area < params.min_area_frac:
        return f"is (nearly) empty ({area:.2%} of the image)"
    if area > params.max_area_frac:
        return f"is (nearly) the whole image ({area:.1%})"
    return None


def update_label(source: np.ndarray, init: np.ndarray, refined: np.ndarray, image: np.ndarray | None,
                 params: UpdateParams, par: PARParams | None = None) -> LabelUpdate:
    """The written mask for one label (see the module docstring).

    Args:
        source: ``(H, W)`` bool source mask at the image's size.
        init / refined: ``(S, S)`` float in [0, 1]: the source at training size and its refinement.
        image: ``(H, W, 3)`` uint8 RGB for the edge-guided step, or None (change applied as is).
        params: margin, guidance and per-label bounds. ``par``: the refiner's parameters.
    """
    if source.ndim != 2 or source.dtype != bool:
        raise ValueError(f"source must be an (H, W) bool mask, got {source.dtype} {source.shape}")
    collapsed = _degenerate(float(np.mean(refined > 0.5)), params)
    if collapsed:
        return LabelUpdate(source.copy(), "kept_source", f"refinement collapsed: {collapsed}", 0.0)
    changed, soft = confident_change(source, init, refined, params.margin)
    if not changed.any():
        return LabelUpdate(source.copy(), "unchanged", None, 0.0)
    if params.guide and image is not None:
        if image.shape[:2] != source.shape:
            raise ValueError(f"image {image.shape[:2]} and mask {source.shape} differ in size")
        cell = int(np.ceil(max(source.shape) / init.shape[0]))
        region = _grown(changed, cell)
        guided = _guided(image, soft, region, par or PARParams(), params.guide_max_side)
        mask = np.where(region, guided, source)
    else:
        mask = source ^ changed
    change = float(np.count_nonzero(mask != source)) / mask.size
    if change == 0.0:
        return LabelUpdate(source.copy(), "unchanged", None, 0.0)
    degenerate = _degenerate(float(mask.mean()), params)
    if degenerate:
        return LabelUpdate(source.copy(), "kept_source", f"refined mask {degenerate}", 0.0)
    if change > params.max_change:
        return LabelUpdate(source.copy(), "kept_source",
                           f"refinement would change {change:.1%} of the pixels (max_change {params.max_change:.0%})", 0.0)
    return LabelUpdate(mask, "refined", None, change)
