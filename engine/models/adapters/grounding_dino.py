"""GroundingDINO grounder: (image, phrase) -> scored boxes, batched across images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.models.adapters.common import from_pretrained, to_device
from engine.models.numerics import apply_numerics
from engine.models.outputs import Detections
from engine.models.registry import ResolvedSource, register
from engine.models.runtime import Runtime


def grounding_prompt(phrase: str) -> str:
    """GroundingDINO expects lower-case text ending with a period."""
    text = " ".join(phrase.lower().split()).rstrip(".")
    return f"{text}."


@dataclass
class GroundingDinoGrounder:
    """Wraps ``GroundingDinoForObjectDetection`` and its processor."""

    model: Any
    processor: Any
    runtime: Runtime
    identity: str

    def detect(
        self, images: list[np.ndarray], phrases: list[str], box_threshold: float, text_threshold: float
    ) -> list[Detections]:
        """Boxes for each image's phrase, in the image's pixel frame, above ``box_threshold``."""
        if len(images) != len(phrases):
            raise ValueError(f"{len(images)} images but {len(phrases)} phrases")
        if not images:
            return []
        prompts = [grounding_prompt(p) for p in phrases]
        pixels = [self.processor.image_processor(images=[image], return_tensors="pt") for image in images]
        groups: dict[tuple, list[int]] = {}
        for index, processed in enumerate(pixels):  # same resized size -> one call, no padding
            groups.setdefault(tuple(processed["pixel_values"].shape[-2:]), []).append(index)
        results: list[dict] = [{}] * len(images)
        for members in groups.values():
            for index, result in zip(members, self._detect_group(members, pixels, prompts, images, box_threshold, text_threshold), strict=True):
                results[index] = result
        return [self._to_detections(image.shape[:2], result) for image, result in zip(images, results, strict=True)]

    def _detect_group(self, members, pixels, prompts, images, box_threshold, text_threshold) -> list[dict]:
        """One model call for images of equal resized size (padding them would change their boxes:
        the Swin backbone does not mask padded pixels, so labels would depend on batch composition)."""
        inputs = self.processor.tokenizer([prompts[i] for i in members], padding=True, return_tensors="pt")
        inputs["pixel_values"] = torch.cat([pixels[i]["pixel_values"] for i in members])
        inputs["pixel_mask"] = torch.cat([pixels[i]["pixel_mask"] for i in members])
        inputs = to_device(inputs, self.runtime)
        with torch.inference_mode(), self.runtime.autocast():
            outputs = self.model(**inputs)
        outputs.logits = outputs.logits.float()
        outputs.pred_boxes = outputs.pred_boxes.float()
        return self.processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=box_threshold, text_threshold=text_threshold,
            target_sizes=[images[i].shape[:2] for i in members],
        )

    @staticmethod
    def _to_detections(size_hw, result: dict) -> Detections:
        height, width = size_hw
        boxes = result["boxes"].detach().cpu().float().numpy().reshape(-1, 4)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        labels = [str(label) for label in result.get("text_labels", result.get("labels", []))]
        labels = labels if len(boxes) else []  # transformers decodes [] as one empty label when nothing passes
        scores = result["scores"].detach().cpu().float().numpy()
        return Detections(boxes.astype(np.float32), scores.astype(np.float32), labels)


@register("grounding_dino")
def load_grounding_dino(source: ResolvedSource, runtime: Runtime) -> GroundingDinoGrounder:
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    model = from_pretrained(GroundingDinoForObjectDetection, str(source.directory), runtime)
    model = apply_numerics(model, source.numerics)  # IDEA's inverse sigmoid unless numerics: transformers
    processor = AutoProcessor.from_pretrained(str(source.directory))
    return GroundingDinoGrounder(model, processor, runtime, source.identity)
