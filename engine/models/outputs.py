"""What the model adapters return: plain arrays in the original image's pixel frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Grounded boxes for one image.

    ``boxes_xyxy``: ``(N, 4) float32`` pixel corners (x0, y0, x1, y1) in the original image;
    ``scores``: ``(N,) float32`` in [0, 1]; ``labels``: the matched text span of each box.
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    labels: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.boxes_xyxy.ndim != 2 or self.boxes_xyxy.shape[1] != 4:
            raise ValueError(f"boxes_xyxy must be (N, 4), got {self.boxes_xyxy.shape}")
        if len(self.scores) != len(self.boxes_xyxy) or len(self.labels) != len(self.boxes_xyxy):
            raise ValueError(
                f"{len(self.boxes_xyxy)} boxes but {len(self.scores)} scores and {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.boxes_xyxy)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), [])

    def select(self, keep: np.ndarray | list[int]) -> Detections:
        keep = np.asarray(keep, dtype=np.int64)
        return Detections(self.boxes_xyxy[keep], self.scores[keep], [self.labels[i] for i in keep])


@dataclass(frozen=True)
class BoxMasks:
    """SAM's masks for the boxes of one image.

    ``masks``: ``(N, H, W) bool`` at the image's size; ``pred_iou``: ``(N,)`` SAM's predicted IoU of
    the chosen multimask output; ``stability``: ``(N,)`` IoU of the mask thresholded at +-1 logit.
    """

    masks: np.ndarray
    pred_iou: np.ndarray
    stability: np.ndarray
