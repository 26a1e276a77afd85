"""SAM segmenter: one image embedding per image, all of its boxes decoded in one call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.models.adapters.common import from_pretrained
from engine.models.outputs import BoxMasks
from engine.models.registry import ResolvedSource, register
from engine.models.runtime import Runtime

STABILITY_OFFSET = 1.0


def stability_score(logits: torch.Tensor, threshold: float, offset: float = STABILITY_OFFSET) -> torch.Tensor:
    """SAM's stability: IoU of the masks ``logits > threshold + offset`` and ``> threshold - offset``.

    ``logits``: ``(N, H, W)``; returns ``(N,)`` in [0, 1] (1 for an empty pair).
    """
    inner = (logits > threshold + offset).flatten(1).sum(1).float()
    outer = (logits > threshold - offset).flatten(1).sum(1).float()
    return torch.where(outer > 0, inner / outer.clamp(min=1), torch.ones_like(outer))


@dataclass
class SamSegmenter:
    """Wraps ``SamModel`` and ``SamProcessor``."""

    model: Any
    processor: Any
    runtime: Runtime
    identity: str

    def _scale_boxes(self, boxes_xyxy: np.ndarray, original_hw, reshaped_hw) -> torch.Tensor:
        scale = np.array(
            [reshaped_hw[1] / original_hw[1], reshaped_hw[0] / original_hw[0]] * 2, dtype=np.float32
        )
        return torch.from_numpy(boxes_xyxy.astype(np.float32) * scale)

    def segment(
        self, images: list[np.ndarray], boxes: list[np.ndarray], mask_threshold: float = 0.0
    ) -> list[BoxMasks | None]:
        """Masks for each image's ``(N, 4)`` xyxy boxes; ``None`` for images without boxes."""
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} box arrays")
        todo = [i for i, b in enumerate(boxes) if len(b)]
        results: list[BoxMasks | None] = [None] * len(images)
        if not todo:
            return results
        processed = self.processor.image_processor([images[i] for i in todo], return_tensors="pt")
        pixel_values = processed["pixel_values"].to(self.runtime.device)
        with torch.inference_mode(), self.runtime.autocast():
            embeddings = self.model.get_image_embeddings(pixel_values)
            for row, index in enumerate(todo):
                original = processed["original_sizes"][row].tolist()
                reshaped = processed["reshaped_input_sizes"][row].tolist()
                input_boxes = self._scale_boxes(boxes[index], original, reshaped)[None].to(self.runtime.device)
                out = self.model(image_embeddings=embeddings[row : row + 1], input_boxes=input_boxes, multimask_output=True)
                iou = out.iou_scores[0].float()  # (N, K)
                best = iou.argmax(dim=-1)
                picked = torch.arange(len(best), device=best.device)
                low_res = out.pred_masks[0, picked, best].float()  # (N, h, w)
                logits = self.processor.post_process_masks(
                    low_res[None, :, None].cpu(), [original], [reshaped], binarize=False
                )[0][:, 0]
                results[index] = BoxMasks(
                    masks=(logits > mask_threshold).numpy(),
                    pred_iou=iou[picked, best].cpu().numpy().astype(np.float32),
                    stability=stability_score(logits, mask_threshold).numpy().astype(np.float32),
                )
        return results


@register("sam")
def load_sam(source: ResolvedSource, runtime: Runtime) -> SamSegmenter:
    from transformers import AutoProcessor, SamModel

    model = from_pretrained(SamModel, str(source.directory), runtime)
    processor = AutoProcessor.from_pretrained(str(source.directory))
    return SamSegmenter(model, processor, runtime, source.identity)
