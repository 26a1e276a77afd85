"""GroundingDINO grounder: (image, phrase) -> scored boxes, batched across images of mixed sizes.

Images are batched by canvas: each image is padded (bottom/right, with a correct ``pixel_mask``)
to its own resized size rounded up to ``pad_multiple``; images with the same canvas share one model
call. The canvas depends only on the image, never on the batch, so an image's boxes are the same
alone or in any batch. Padding still changes what the Swin backbone sees at the image's border (it
does not mask padded pixels), so ``pad_multiple > 1`` moves boxes slightly against the unpadded
single-image run; README "Labelling engine" has the measured drift.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from engine.models.adapters.common import fp32_island, from_pretrained
from engine.models.numerics import apply_numerics
from engine.models.outputs import Detections
from engine.models.preprocess import ImageTransform, PixelBatch, collate
from engine.models.registry import ResolvedSource, register
from engine.models.runtime import Runtime
from engine.models.timing import timed

SEPARATORS = (".", "?")  # GroundingDINO's phrase separators (bert ids 1012, 1029)


def grounding_prompt(phrase: str) -> str:
    """GroundingDINO expects lower-case text ending with a period."""
    text = " ".join(phrase.lower().split()).rstrip(".")
    return f"{text}."


def clean_label(text: str) -> str:
    """A decoded box label without special tokens or separator dots: ``'dog. [SEP]'`` -> ``'dog'``."""
    words = [w for w in text.replace(".", " ").replace("?", " ").split() if not (w.startswith("[") and w.endswith("]"))]
    return " ".join(words)


@dataclass
class GroundingDinoGrounder:
    """Wraps ``GroundingDinoForObjectDetection`` and its processor (tokenizer + pixel transform)."""

    model: Any
    processor: Any
    runtime: Runtime
    identity: str
    transform: ImageTransform = field(init=False)
    _skip_ids: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        self.transform = ImageTransform.from_processor(self.processor.image_processor)
        tokenizer = self.processor.tokenizer
        separators = {tokenizer.convert_tokens_to_ids(t) for t in SEPARATORS}
        self._skip_ids = frozenset({*tokenizer.all_special_ids, *separators} - {tokenizer.unk_token_id})

    def detect(
        self, images: list[np.ndarray], phrases: list[str], box_threshold: float, text_threshold: float,
        pad_multiple: int = 1,
    ) -> list[Detections]:
        """Boxes for each image's phrase, in the image's pixel frame, above ``box_threshold``."""
        if len(images) != len(phrases):
            raise ValueError(f"{len(images)} images but {len(phrases)} phrases")
        transform = self.transform.with_pad_multiple(pad_multiple)
        resized = [transform.resize(image) for image in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for index, tensor in enumerate(resized):
            groups.setdefault(transform.canvas(tuple(tensor.shape[1:])), []).append(index)
        results: list[Detections] = [Detections.empty()] * len(images)
        for members in groups.values():
            pixels = collate([resized[i] for i in members], [images[i].shape[:2] for i in members], transform,
                             normalize_now=self.runtime.device.type == "cpu")
            found = self.detect_pixels(pixels, [phrases[i] for i in members], box_threshold, text_threshold)
            for index, detections in zip(members, found, strict=True):
                results[index] = detections
        return results

    def detect_pixels(
        self, pixels: PixelBatch, phrases: list[str], box_threshold: float, text_threshold: float
    ) -> list[Detections]:
        """One model call for a prepared batch on one canvas (``pixel_mask`` marks each image)."""
        if len(pixels) != len(phrases):
            raise ValueError(f"{len(pixels)} images but {len(phrases)} phrases")
        device = self.runtime.device
        text = self.processor.tokenizer([grounding_prompt(p) for p in phrases], padding=True, return_tensors="pt")
        inputs = {k: v.to(device) for k, v in text.items()}
        inputs["pixel_values"] = pixels.to_model(device, self.runtime.dtype)
        inputs["pixel_mask"] = pixels.valid_mask(device)
        with torch.inference_mode(), self.runtime.autocast(), timed("ground", device):
            outputs = self.model(**inputs)
        return self._postprocess(outputs.logits, outputs.pred_boxes, text["input_ids"], pixels.original_hw,
                                 box_threshold, text_threshold)

    def _postprocess(self, logits, pred_boxes, input_ids, original_hw, box_threshold, text_threshold) -> list[Detections]:
        """Scores, pixel boxes (fp32) and cleaned labels, as ``post_process_grounded_object_detection``.

        ``logits``: ``(B, Q, T)``; ``pred_boxes``: ``(B, Q, 4)`` cx, cy, w, h in [0, 1] of each image.
        """
        probs = logits.float().sigmoid()
        scores, _ = probs.max(dim=-1)
        cx, cy, w, h = pred_boxes.float().unbind(-1)
        corners = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
        keep = scores > box_threshold
        posmaps = probs > text_threshold
        posmaps[..., 0] = False  # as transformers: never the first ([CLS]) or last position
        posmaps[..., -1] = False
        keep, scores, corners, posmaps = keep.cpu(), scores.cpu(), corners.cpu(), posmaps.cpu()
        out = []
        for row, (height, width) in enumerate(original_hw):
            kept = keep[row]
            boxes = corners[row][kept] * torch.tensor([width, height, width, height], dtype=torch.float32)
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, width)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, height)
            labels = self._labels(input_ids[row].numpy(), posmaps[row][kept].numpy())
            out.append(Detections(boxes.numpy().astype(np.float32), scores[row][kept].numpy().astype(np.float32), labels))
        return out

    def _labels(self, ids: np.ndarray, posmaps: np.ndarray) -> list[str]:
        """The text span of each box (``posmaps``: ``(K, T) bool``), decoded once per distinct span."""
        if not len(posmaps):
            return []
        width = min(len(ids), posmaps.shape[1])
        usable = np.array([int(i) not in self._skip_ids for i in ids[:width]], dtype=bool)
        spans, inverse = np.unique(posmaps[:, :width] & usable, axis=0, return_inverse=True)
        texts = [clean_label(self.processor.tokenizer.decode(ids[:width][span].tolist())) for span in spans]
        return [texts[i] for i in np.asarray(inverse).reshape(-1)]


def box_heads(model: Any) -> list[torch.nn.Module]:
    """The MLP heads that predict box deltas and query positions from reference boxes."""
    from transformers.models.grounding_dino.modeling_grounding_dino import GroundingDinoMLPPredictionHead

    return [m for m in model.modules() if isinstance(m, GroundingDinoMLPPredictionHead)]


def keep_box_math_fp32(model: Any, dtype: torch.dtype) -> None:
    """In a bf16/fp16 GroundingDINO, keep proposals, reference points and box heads in fp32.

    Box deltas are added to inverse-sigmoid reference boxes layer after layer; in bf16 each step
    rounds a coordinate to ~1/256 of the image (5 px at 1333). The box MLP heads, the encoder's
    proposal grid and the valid ratios run in fp32; the query-position head returns the model dtype.
    """
    from transformers.models.grounding_dino.modeling_grounding_dino import GroundingDinoMLPPredictionHead

    for name, module in model.named_modules():
        if isinstance(module, GroundingDinoMLPPredictionHead):
            fp32_island(module, out_dtype=dtype if name.endswith("reference_points_head") else None)
    inner = model.model
    proposals = inner.generate_encoder_output_proposals
    valid_ratio = inner.get_valid_ratio

    @functools.wraps(proposals)
    def proposals_fp32(enc_output, padding_mask, spatial_shapes_list):
        query, boxes = proposals(enc_output.float(), padding_mask, spatial_shapes_list)
        return query.to(enc_output.dtype), boxes

    inner.generate_encoder_output_proposals = proposals_fp32
    inner.get_valid_ratio = lambda mask, dtype=None: valid_ratio(mask, dtype=torch.float32)


@register("grounding_dino")
def load_grounding_dino(source: ResolvedSource, runtime: Runtime) -> GroundingDinoGrounder:
    """Load a GroundingDINO directory (see :func:`engine.models.registry.resolve_source`) on ``runtime``.

    Numerics options (e.g. the inverse sigmoid of converted IDEA checkpoints) hook in here, after
    ``from_pretrained`` and before the fp32 islands, so they apply on every device and precision.
    """
    from transformers import AutoProcessor, GroundingDinoForObjectDetection

    model = from_pretrained(GroundingDinoForObjectDetection, str(source.directory), runtime, fp32_modules=box_heads)
    model = apply_numerics(model, source.numerics)  # IDEA's inverse sigmoid unless numerics: transformers
    return build_grounder(model, AutoProcessor.from_pretrained(str(source.directory)), runtime, source.identity)


def build_grounder(model: Any, processor: Any, runtime: Runtime, identity: str) -> GroundingDinoGrounder:
    """The adapter around a placed GroundingDINO (see ``common.place(..., box_heads)``)."""
    if runtime.dtype != torch.float32:
        keep_box_math_fp32(model, runtime.dtype)
    return GroundingDinoGrounder(model, processor, runtime, identity)
