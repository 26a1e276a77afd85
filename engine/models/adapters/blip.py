"""BLIP captioner: images -> one caption each, batched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.models.adapters.common import from_pretrained, to_device
from engine.models.registry import ResolvedSource, register
from engine.models.runtime import Runtime


@dataclass
class BlipCaptioner:
    """Wraps ``BlipForConditionalGeneration`` and its processor."""

    model: Any
    processor: Any
    runtime: Runtime
    identity: str

    def caption(
        self, images: list[np.ndarray], prompt: str = "", max_new_tokens: int = 20, num_beams: int = 1
    ) -> list[str]:
        """Caption ``images`` (each ``(H, W, 3) uint8``); ``prompt`` conditions the decoder if set."""
        if not images:
            return []
        text = [prompt] * len(images) if prompt else None
        inputs = to_device(self.processor(images=images, text=text, return_tensors="pt"), self.runtime)
        with torch.inference_mode(), self.runtime.autocast():
            ids = self.model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=num_beams)
        texts = self.processor.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]


@register("blip")
def load_blip(source: ResolvedSource, runtime: Runtime) -> BlipCaptioner:
    from transformers import AutoProcessor, BlipForConditionalGeneration

    model = from_pretrained(BlipForConditionalGeneration, str(source.directory), runtime)
    processor = AutoProcessor.from_pretrained(str(source.directory))
    return BlipCaptioner(model, processor, runtime, source.identity)
