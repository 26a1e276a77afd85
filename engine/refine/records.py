"""Refined label rows: the source run's record with the refined mask and the refinement columns.

A refined shard has every column of :data:`engine.labeling.record.LABEL_SCHEMA` (caption, phrase,
category and boxes copied from the source run; mask, mask measures and ``quality_score`` recomputed)
plus:

- ``cue_agreement``: IoU between the unsupervised cue label (SCE -> Otsu -> PAR) and the source
  (SAM) mask, both at the image's full size; null when the source has no mask. Low values flag
  labels where the foundation models and the unsupervised cues disagree (our "mistakenness").
- ``refine_change``: fraction of the image's pixels whose label changed from the source mask to
  the written one, in [0, 1]; 0 when the source was kept. Resampling alone is never counted: masks
  are changed at full resolution only where refinement is confident (:mod:`engine.refine.update`).
- ``refine_action``: ``refined`` | ``unchanged`` | ``kept_source`` | ``copied`` (see
  :data:`engine.refine.update.ACTIONS`) and ``refine_reason``: why a change was refused or a row
  only copied (the run's gate failed, a degenerate or too large change, no source mask, unreadable).
- ``source_run``: the labelling run that was refined.

Rows whose source shards come from other tools may lack ``image_id``/``status``; they are filled in
(content id of the image file; ``ok`` when there is a mask, else ``no_object``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.labeling.quality import mask_signals, quality_score
from engine.labeling.record import LABEL_SCHEMA
from engine.masks import decode_rle, encode_rle, mask_area_fraction
from engine.refine.plan import row_image_id, row_status
from engine.refine.update import LabelUpdate

REFINE_COLUMNS = ("cue_agreement", "refine_change", "source_run", "refine_action", "refine_reason")
REFINED_LABEL_SCHEMA = pa.schema(
    [*LABEL_SCHEMA, pa.field("cue_agreement", pa.float32()), pa.field("refine_change", pa.float32()),
     pa.field("source_run", pa.string()), pa.field("refine_action", pa.string()), pa.field("refine_reason", pa.string())]
)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``(H, W)`` bool masks; 1.0 when both are empty."""
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b)) / union if union else 1.0


def source_mask(row: dict) -> np.ndarray | None:
    """The source row's mask as ``(H, W)`` bool, or ``None`` when it has none."""
    if not row.get("mask_rle") or row.get("height") is None:
        return None
    return decode_rle(row["mask_rle"], (row["height"], row["width"]))


def _recomputed_quality(row: dict) -> float | None:
    needed = (row.get("best_box_score"), row.get("sam_pred_iou"), row.get("stability_score"))
    if any(v is None for v in needed):
        return None
    return quality_score(*needed, row["shape_score"])


def refined_row(row: dict, run_id: str, source_run: str, update: LabelUpdate | None, cue: np.ndarray | None,
                action: str = "copied", reason: str | None = None) -> dict:
    """The refined version of a source label ``row``.

    ``update``: the written mask of a refined label (:func:`engine.refine.update.update_label`), or
    None for a row that is carried over as is with ``action`` and ``reason``. ``cue``: the
    unsupervised cue label ``(H, W) bool`` at the image's size, or None.
    """
    out = {**row, "run_id": run_id, "source_run": source_run, "cue_agreement": None, "refine_change": None,
           "status": row_status(row), "refine_action": action, "refine_reason": reason}
    out["image_id"] = out.get("image_id") or row_image_id(row)
    source = source_mask(row)
    if source is not None and cue is not None:
        out["cue_agreement"] = mask_iou(cue, source)
    if source is not None:
        out["refine_change"] = 0.0
    if update is None:
        return out
    out.update(refine_action=update.action, refine_reason=update.reason, refine_change=update.change)
    if update.action != "refined":
        return out
    mask = update.mask
    out.update(status="ok", error=None, mask_rle=encode_rle(mask), **mask_signals(mask, row.get("boxes_xyxy")))
    out["quality_score"] = _recomputed_quality(out)
    return out


def reject_full_mask(out: dict, limit: float) -> dict:
    """A refined row whose ``ok`` mask covers more than ``limit`` of the image becomes ``no_object``.

    Refinement never writes such masks itself (:func:`engine.refine.update.update_label`), but a
    kept or copied source mask can be one (tiny random segmenters do it); the new version does not
    pass it off as a salient-object label. The mask is dropped and ``error`` / ``refine_reason`` say why.
    """
    if out.get("status") != "ok" or not out.get("mask_rle"):
        return out
    area = out.get("mask_area_frac")
    if area is None:
        area = mask_area_fraction(decode_rle(out["mask_rle"], (out["height"], out["width"])))
    if area <= limit:
        return out
    reason = (f"the source mask covers {area:.1%} of the image (more than refine.update.reject_source_above "
              f"{limit:.1%}): not a salient-object label")
    return {**out, "status": "no_object", "error": reason, "mask_rle": None, "refine_action": "rejected",
            "refine_reason": reason, "refine_change": out.get("refine_change")}


def refined_table(rows: list[dict]) -> pa.Table:
    """Arrow table of refined rows with :data:`REFINED_LABEL_SCHEMA`."""
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in REFINED_LABEL_SCHEMA} for r in rows],
                                schema=REFINED_LABEL_SCHEMA)
