"""SAM segmenter: one image-encoder call per batch, all boxes of all images in one decoder call.

Three steps, so the labelling pipeline can put each where it belongs:

1. :meth:`SamSegmenter.embed`: ``(B, 3, 1024, 1024)`` prepared pixels -> image embeddings.
2. :meth:`SamSegmenter.decode`: every box of every image in ONE prompt-encoder + mask-decoder call
   (each box is one row, its image's embedding gathered for it) -> :class:`LowResMasks`.
3. :meth:`SamSegmenter.finish` (any thread; torch ops on the tensors' device): upscale to the image
   size exactly as ``SamProcessor.post_process_masks``, threshold, stability -> :class:`BoxMasks`.

``multimask=False`` (default, SAM's convention for an unambiguous box prompt and Grounded-SAM's
call) keeps SAM's single-mask output; ``True`` asks for three and keeps the best predicted IoU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.models.adapters.common import fp32_island, from_pretrained, maybe_compile
from engine.models.outputs import BoxMasks
from engine.models.preprocess import ImageTransform, PixelBatch, collate
from engine.models.registry import ResolvedSource, register
from engine.models.runtime import Runtime
from engine.models.timing import timed

STABILITY_OFFSET = 1.0


def stability_score(logits: torch.Tensor, threshold: float, offset: float = STABILITY_OFFSET) -> torch.Tensor:
    """SAM's stability: IoU of the masks ``logits > threshold + offset`` and ``> threshold - offset``.

    ``logits``: ``(N, H, W)``; returns ``(N,)`` in [0, 1] (1 for an empty pair).
    """
    inner = (logits > threshold + offset).flatten(1).sum(1).float()
    outer = (logits > threshold - offset).flatten(1).sum(1).float()
    return torch.where(outer > 0, inner / outer.clamp(min=1), torch.ones_like(outer))


def _upscale_crop(low: torch.Tensor, canvas_hw: tuple[int, int], crop_hw: tuple[int, int]) -> torch.Tensor:
    """``interpolate(low, canvas_hw)[..., :crop_h, :crop_w]`` (bilinear), computing only the crop.

    With an integer factor ``f = canvas / low``, output rows ``< crop_h`` read input rows up to
    ``floor((crop_h - 0.5) / f - 0.5) + 1``; upscaling just those rows by the same factor gives the
    same values (same source coordinates, no edge clamp inside the crop). Other factors: full size.
    """
    (height, width), (crop_h, crop_w) = low.shape[-2:], crop_hw
    if canvas_hw[0] % height or canvas_hw[1] % width:
        full = F.interpolate(low, canvas_hw, mode="bilinear", align_corners=False)
        return full[..., :crop_h, :crop_w]
    fh, fw = canvas_hw[0] // height, canvas_hw[1] // width
    rows = min(height, int((crop_h - 0.5) / fh - 0.5) + 2)
    cols = min(width, int((crop_w - 0.5) / fw - 0.5) + 2)
    part = F.interpolate(low[..., :rows, :cols], (rows * fh, cols * fw), mode="bilinear", align_corners=False)
    return part[..., :crop_h, :crop_w]


@dataclass
class LowResMasks:
    """SAM's chosen low-resolution output for the boxes of one image.

    ``logits``: ``(N, h, w)`` float32 (256x256 for real SAM), on the model's device;
    ``pred_iou``: ``(N,)``; sizes are the original image's and the resized image's inside the canvas.
    """

    logits: torch.Tensor
    pred_iou: torch.Tensor
    original_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    canvas_hw: tuple[int, int]


@dataclass
class SamSegmenter:
    """Wraps ``SamModel`` and ``SamProcessor``."""

    model: Any
    processor: Any
    runtime: Runtime
    identity: str
    transform: ImageTransform = field(init=False)

    def __post_init__(self) -> None:
        self.transform = ImageTransform.from_processor(self.processor.image_processor)
        if self.transform.pad_hw is None:
            raise ValueError(f"{self.identity}: SAM's image processor must pad to a fixed size")

    def segment(
        self, images: list[np.ndarray], boxes: list[np.ndarray], mask_threshold: float = 0.0, multimask: bool = False
    ) -> list[BoxMasks | None]:
        """Masks for each image's ``(N, 4)`` xyxy boxes; ``None`` for images without boxes."""
        if len(images) != len(boxes):
            raise ValueError(f"{len(images)} images but {len(boxes)} box arrays")
        todo = [i for i, b in enumerate(boxes) if len(b)]
        results: list[BoxMasks | None] = [None] * len(images)
        if not todo:
            return results
        pixels = collate([self.transform.resize(images[i]) for i in todo], [images[i].shape[:2] for i in todo],
                         self.transform, normalize_now=self.runtime.device.type == "cpu")
        low = self.decode(self.embed(pixels), pixels, [boxes[i] for i in todo], multimask)
        for index, masks in zip(todo, low, strict=True):
            results[index] = self.finish(masks, mask_threshold)
        return results

    def segment_pixels(self, pixels: PixelBatch, boxes: list[np.ndarray], multimask: bool = False) -> list[LowResMasks]:
        """:meth:`embed` then :meth:`decode`: two model calls for a whole prepared batch."""
        return self.decode(self.embed(pixels), pixels, boxes, multimask)

    def embed(self, pixels: PixelBatch) -> torch.Tensor:
        """Image embeddings ``(B, C, h, w)`` of a prepared batch, in one encoder call."""
        with torch.inference_mode(), self.runtime.autocast(), timed("segment", self.runtime.device):
            return self.model.get_image_embeddings(pixels.to_model(self.runtime.device, self.runtime.dtype))

    def decode(
        self, embeddings: torch.Tensor, pixels: PixelBatch, boxes: list[np.ndarray], multimask: bool = False
    ) -> list[LowResMasks]:
        """Low-res masks for ``boxes[b]`` (``(N_b, 4)`` xyxy pixels of image ``b``, N_b >= 1), one call."""
        if len(boxes) != len(pixels) or any(len(b) == 0 for b in boxes):
            raise ValueError("decode needs one non-empty (N, 4) box array per image")
        device = self.runtime.device
        scaled = [self._scale_boxes(b, pixels.original_hw[i], pixels.sizes_hw[i]) for i, b in enumerate(boxes)]
        owner = torch.cat([torch.full((len(b),), i, dtype=torch.long) for i, b in enumerate(scaled)]).to(device)
        input_boxes = torch.cat(scaled)[:, None].to(device)  # (total, 1, 4) fp32: one box per row
        with torch.inference_mode(), self.runtime.autocast(), timed("segment", device):
            out = self.model(image_embeddings=embeddings.index_select(0, owner), input_boxes=input_boxes,
                             multimask_output=multimask)
        iou = out.iou_scores[:, 0].float()  # (total, K)
        best = iou.argmax(dim=-1)
        rows = torch.arange(len(best), device=best.device)
        logits = out.pred_masks[:, 0][rows, best].float()  # (total, h, w)
        chosen = iou[rows, best]
        results, start = [], 0
        for i, b in enumerate(scaled):
            stop = start + len(b)
            results.append(LowResMasks(logits[start:stop], chosen[start:stop], tuple(pixels.original_hw[i]),
                                       tuple(pixels.sizes_hw[i]), pixels.canvas_hw))
            start = stop
        return results

    @staticmethod
    def _scale_boxes(boxes_xyxy: np.ndarray, original_hw, resized_hw) -> torch.Tensor:
        scale = np.array([resized_hw[1] / original_hw[1], resized_hw[0] / original_hw[0]] * 2, dtype=np.float32)
        return torch.from_numpy(np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4) * scale)

    @staticmethod
    def finish(low: LowResMasks, mask_threshold: float = 0.0) -> BoxMasks:
        """Full-size masks, predicted IoU and stability (``SamProcessor.post_process_masks``'s resampling)."""
        with torch.inference_mode():
            logits = _upscale_crop(low.logits[:, None], low.canvas_hw, low.resized_hw)
            logits = F.interpolate(logits, low.original_hw, mode="bilinear", align_corners=False)[:, 0]
            return BoxMasks(
                masks=(logits > mask_threshold).cpu().numpy(),
                pred_iou=low.pred_iou.cpu().numpy().astype(np.float32),
                stability=stability_score(logits, mask_threshold).cpu().numpy().astype(np.float32),
            )


def fourier_features(model: Any) -> list[torch.nn.Module]:
    """SAM's random-Fourier positional encoders (image grid and prompt coordinates): phases of
    ``2 pi (2x - 1) @ G`` turn bf16's coordinate rounding into sign flips of sin/cos."""
    return list({id(m): m for m in (model.shared_image_embedding, model.prompt_encoder.shared_embedding)}.values())


@register("sam")
def load_sam(source: ResolvedSource, runtime: Runtime) -> SamSegmenter:
    from transformers import AutoProcessor, SamModel

    model = from_pretrained(SamModel, str(source.directory), runtime, fp32_modules=fourier_features)
    return build_segmenter(model, AutoProcessor.from_pretrained(str(source.directory)), runtime, source.identity)


def build_segmenter(model: Any, processor: Any, runtime: Runtime, identity: str) -> SamSegmenter:
    """The adapter around a placed ``SamModel`` (see ``common.place(..., fourier_features)``)."""
    if runtime.dtype != torch.float32:  # box corners and the positional grid as Fourier features in fp32
        for module in fourier_features(model):
            fp32_island(module, out_dtype=runtime.dtype)
    maybe_compile(model.vision_encoder, runtime, "SAM image encoder")
    return SamSegmenter(model, processor, runtime, identity)
