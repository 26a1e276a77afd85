"""GroundingDINO grounder: (image, phrase) -> scored boxes, batched across images."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.models.adapters.common import from_pretrained, to_device
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
        inputs = self.processor(images=images, text=prompts, padding=True, return_tensors="pt")
        inputs = to_device(inputs, self.runtime)
        with torch.inference_mode(), self.runtime.autocast():
            outputs = self.model(**inputs)
        outputs.logits = outputs.logits.float()
        outputs.pred_boxes = outputs.pred_boxes.float()
        sizes = [image.shape[:2] for image in images]
        results = self.processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=box_threshold, text_threshold=text_threshold, target_sizes=sizes
        )
        detections = []
        for (height, width), result in zip(sizes, results, strict=True):
            boxes = result["boxes"].detach().cpu().float().numpy().reshape(-1, 4)
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
            labels = [str(label) for label in result.get("text_labels", result.get("labels", []))]
            scores = result["scores"].detach().cpu().float().numpy()
            detections.append(Detections(boxes.astype(np.float32), scores.astype(np.float32), labels))
        return detections


@register("grounding_dino")
def load_grounding_dino(source: ResolvedSource, runtime: Runtime) -> GroundingDinoGrounder:
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    model = from_pretrained(GroundingDinoForObjectDetection, str(source.directory), runtime)
    processor = AutoProcessor.from_pretrained(str(source.directory))
    return GroundingDinoGrounder(model, processor, runtime, source.identity)
