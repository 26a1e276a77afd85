"""BLIP captioner: images -> one caption each, generated as one batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.models.adapters.common import from_pretrained, maybe_compile
from engine.models.preprocess import ImageTransform, PixelBatch, collate
from engine.models.registry import ResolvedSource, register
from engine.models.runtime import Runtime
from engine.models.timing import timed


@dataclass
class BlipCaptioner:
    """Wraps ``BlipForConditionalGeneration`` and its processor (tokenizer + pixel transform)."""

    model: Any
    processor: Any
    runtime: Runtime
    identity: str
    transform: ImageTransform = field(init=False)

    def __post_init__(self) -> None:
        self.transform = ImageTransform.from_processor(self.processor.image_processor)

    def caption(
        self, images: list[np.ndarray], prompt: str = "", max_new_tokens: int = 20, num_beams: int = 1
    ) -> list[str]:
        """Caption ``images`` (each ``(H, W, 3) uint8``); ``prompt`` conditions the decoder if set."""
        if not images:
            return []
        pixels = collate([self.transform.resize(image) for image in images], [image.shape[:2] for image in images],
                         self.transform, normalize_now=self.runtime.device.type == "cpu")
        return self.caption_pixels(pixels, prompt, max_new_tokens, num_beams)

    def caption_pixels(self, pixels: PixelBatch, prompt: str = "", max_new_tokens: int = 20, num_beams: int = 1) -> list[str]:
        """Caption a prepared batch (``self.transform``'s canvas) in one ``generate`` call."""
        inputs: dict[str, torch.Tensor] = {"pixel_values": pixels.to_model(self.runtime.device, self.runtime.dtype)}
        if prompt:
            text = self.processor.tokenizer([prompt] * len(pixels), return_tensors="pt")
            inputs.update({k: v.to(self.runtime.device) for k, v in text.items() if k in ("input_ids", "attention_mask")})
        with torch.inference_mode(), self.runtime.autocast(), timed("caption", self.runtime.device):
            ids = self.model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=num_beams)
        texts = self.processor.batch_decode(ids.cpu(), skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]


@register("blip")
def load_blip(source: ResolvedSource, runtime: Runtime) -> BlipCaptioner:
    from transformers import AutoProcessor, BlipForConditionalGeneration

    model = from_pretrained(BlipForConditionalGeneration, str(source.directory), runtime)
    return build_captioner(model, AutoProcessor.from_pretrained(str(source.directory)), runtime, source.identity)


def build_captioner(model: Any, processor: Any, runtime: Runtime, identity: str) -> BlipCaptioner:
    """The adapter around a placed ``BlipForConditionalGeneration``."""
    maybe_compile(model.vision_model, runtime, "BLIP vision encoder")
    return BlipCaptioner(model, processor, runtime, identity)
