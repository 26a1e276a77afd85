"""The central pseudo-label record: what every labeller produces and every writer consumes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

Status = Literal["ok", "no_object", "error"]
STATUSES: tuple[str, ...] = ("ok", "no_object", "error")


@dataclass
class PseudoLabel:
    """One image's label from one labelling run.

    ``boxes_xyxy`` are pixel corners in the (EXIF-oriented) image; ``mask_rle`` is the compressed COCO
    RLE ``counts`` of the merged ``(height, width)`` saliency mask (``None`` unless status is ``ok``).
    Quality signals are per image (see :mod:`engine.labeling.quality`).
    """

    image_id: str
    path: str
    run_id: str
    shard: str
    status: Status
    error: str | None = None
    height: int | None = None
    width: int | None = None
    caption: str | None = None
    phrase: str | None = None
    category: str | None = None
    boxes_xyxy: list[list[float]] = field(default_factory=list)
    box_scores: list[float] = field(default_factory=list)
    box_labels: list[str] = field(default_factory=list)
    mask_rle: str | None = None
    best_box_score: float | None = None
    box_count: int = 0
    sam_pred_iou: float | None = None
    stability_score: float | None = None
    mask_area_frac: float | None = None
    components: int | None = None
    boundary_smoothness: float | None = None
    shape_score: float | None = None
    quality_score: float | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.status == "ok" and self.mask_rle is None:
            raise ValueError(f"{self.path}: status 'ok' needs a mask")
        if self.status == "error" and not self.error:
            raise ValueError(f"{self.path}: status 'error' needs an error message")

    def to_row(self) -> dict:
        return dataclasses.asdict(self)


LABEL_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("path", pa.string()),
        ("run_id", pa.string()),
        ("shard", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("caption", pa.string()),
        ("phrase", pa.string()),
        ("category", pa.string()),
        ("boxes_xyxy", pa.list_(pa.list_(pa.float32(), 4))),
        ("box_scores", pa.list_(pa.float32())),
        ("box_labels", pa.list_(pa.string())),
        ("mask_rle", pa.string()),
        ("best_box_score", pa.float32()),
        ("box_count", pa.int32()),
        ("sam_pred_iou", pa.float32()),
        ("stability_score", pa.float32()),
        ("mask_area_frac", pa.float32()),
        ("components", pa.int32()),
        ("boundary_smoothness", pa.float32()),
        ("shape_score", pa.float32()),
        ("quality_score", pa.float32()),
    ]
)


def labels_to_table(labels: list[PseudoLabel]) -> pa.Table:
    """Arrow table of ``labels`` with :data:`LABEL_SCHEMA`."""
    return pa.Table.from_pylist([label.to_row() for label in labels], schema=LABEL_SCHEMA)
