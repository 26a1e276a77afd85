"""Refined label rows: the source run's record with the refined mask and two extra quality columns.

A refined shard has every column of :data:`engine.labeling.record.LABEL_SCHEMA` (caption, phrase,
category and boxes copied from the source run; mask, mask measures and ``quality_score`` recomputed)
plus:

- ``cue_agreement``: IoU between the unsupervised cue label (SCE -> Otsu -> PAR) and the source
  (SAM) mask, both at the image's full size; null when the source has no mask. Low values flag
  labels where the foundation models and the unsupervised cues disagree (our "mistakenness").
- ``refine_change``: fraction of the image's pixels whose label changed from the source mask
  (empty when the source had none) to the refined mask, in [0, 1].
- ``source_run``: the labelling run that was refined.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.labeling.quality import mask_signals, quality_score
from engine.labeling.record import LABEL_SCHEMA
from engine.masks import decode_rle, encode_rle

REFINE_COLUMNS = ("cue_agreement", "refine_change", "source_run")
REFINED_LABEL_SCHEMA = pa.schema(
    [*LABEL_SCHEMA, pa.field("cue_agreement", pa.float32()), pa.field("refine_change", pa.float32()),
     pa.field("source_run", pa.string())]
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


def refined_row(row: dict, run_id: str, source_run: str, refined: np.ndarray | None, cue: np.ndarray | None) -> dict:
    """The refined version of a source label ``row``.

    ``refined`` / ``cue``: ``(H, W)`` bool at the image's size, or ``None`` for images that were not
    refined (unreadable ones keep their source status and error).
    """
    out = {**row, "run_id": run_id, "source_run": source_run, "cue_agreement": None, "refine_change": None}
    if refined is None:
        return out
    source = source_mask(row)
    if source is not None and cue is not None:
        out["cue_agreement"] = mask_iou(cue, source)
    before = source if source is not None else np.zeros_like(refined)
    out["refine_change"] = float(np.count_nonzero(before != refined)) / refined.size
    if refined.any():
        out.update(status="ok", error=None, mask_rle=encode_rle(refined))
    else:
        out.update(status="no_object", error=None, mask_rle=None)
    out.update(mask_signals(refined, row.get("boxes_xyxy")))
    out["quality_score"] = _recomputed_quality(out)
    return out


def refined_table(rows: list[dict]) -> pa.Table:
    """Arrow table of refined rows with :data:`REFINED_LABEL_SCHEMA`."""
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in REFINED_LABEL_SCHEMA} for r in rows],
                                schema=REFINED_LABEL_SCHEMA)
