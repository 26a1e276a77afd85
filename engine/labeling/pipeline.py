"""Caption -> phrase -> boxes -> masks -> quality, for a batch of images.

A batch that fails inside a model is split in halves and retried, down to single images, so one
odd image (or a GPU out-of-memory on a large batch) costs at most that image, never the batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.labeling.boxes import select_boxes
from engine.labeling.identity import code_identity, runtime_identity
from engine.labeling.phrase import extract_phrase
from engine.labeling.quality import measure
from engine.labeling.record import PseudoLabel
from engine.masks import encode_rle
from engine.models.registry import load_model
from engine.models.runtime import resolve_runtime
from engine.params import LabelParams, ModelsParams
from engine.storage import fingerprint

log = logging.getLogger(__name__)


@dataclass
class LabelModels:
    """The three models of the labelling chain, loaded once per process."""

    captioner: Any
    grounder: Any
    segmenter: Any

    @property
    def identity(self) -> dict[str, Any]:
        """Model identities by role, plus ``runtime``: device type and precision they run with."""
        return {
            "captioner": self.captioner.identity,
            "grounder": self.grounder.identity,
            "segmenter": self.segmenter.identity,
            "runtime": runtime_identity(getattr(self.captioner, "runtime", None)),
        }


def load_label_models(params: ModelsParams, profile: str | None = None) -> LabelModels:
    """Load (or reuse, per process) the captioner, grounder and segmenter of ``profile``."""
    runtime = resolve_runtime(params.device, params.precision)
    specs = params.specs(profile)
    return LabelModels(*(load_model(specs[role], runtime) for role in ("captioner", "grounder", "segmenter")))


def labelling_run_id(identities: dict[str, Any], params: LabelParams) -> str:
    """A labelling run is identified by what shapes its labels, so a rerun resumes it and any change
    starts a new run: ``identities`` (model weights by role and the ``runtime`` device type and
    precision, as :attr:`LabelModels.identity` gives them), the label parameters, and the labelling
    code and library versions (:mod:`engine.labeling.identity`)."""
    return fingerprint(identities, params.result_params(), code_identity(), length=6)


@dataclass
class ImageItem:
    """A decoded image (``rgb``: ``(H, W, 3) uint8``) or the reason it could not be decoded."""

    image_id: str
    path: str
    rgb: np.ndarray | None = None
    error: str | None = None


class Labeler:
    """Labels batches of decoded images with one set of models and parameters."""

    def __init__(self, models: LabelModels, params: LabelParams, run_id: str):
        self.models = models
        self.params = params
        self.run_id = run_id

    def _base(self, item: ImageItem, shard: str, **fields) -> PseudoLabel:
        height, width = item.rgb.shape[:2] if item.rgb is not None else (None, None)
        return PseudoLabel(item.image_id, item.path, self.run_id, shard, height=height, width=width, **fields)

    def label_batch(self, items: list[ImageItem], shard: str) -> list[PseudoLabel]:
        """One label per item, in order; never raises for a bad image."""
        labels: dict[int, PseudoLabel] = {}
        good = []
        for index, item in enumerate(items):
            if item.rgb is None:
                labels[index] = self._base(item, shard, status="error", error=item.error or f"{item.path}: unreadable")
            else:
                good.append(index)
        for index, label in zip(good, self._label_robust([items[i] for i in good], shard), strict=True):
            labels[index] = label
        return [labels[i] for i in range(len(items))]

    def _label_robust(self, items: list[ImageItem], shard: str) -> list[PseudoLabel]:
        if not items:
            return []
        try:
            return self._label_decoded(items, shard)
        except Exception as err:  # a model failed on this batch: isolate the image(s) responsible
            if len(items) == 1:
                log.warning("labelling failed for %s: %s", items[0].path, err)
                message = f"{items[0].path}: labelling failed ({type(err).__name__}: {err})"
                return [self._base(items[0], shard, status="error", error=message)]
            _release_gpu_memory()
            half = len(items) // 2
            return self._label_robust(items[:half], shard) + self._label_robust(items[half:], shard)

    def _label_decoded(self, items: list[ImageItem], shard: str) -> list[PseudoLabel]:
        p = self.params
        images = [item.rgb for item in items]
        captions = self.models.captioner.caption(images, p.caption_prompt, p.max_new_tokens, p.num_beams)
        phrases = [extract_phrase(caption) for caption in captions]
        grounded = [i for i, phrase in enumerate(phrases) if phrase.text]
        detections = dict(
            zip(
                grounded,
                self.models.grounder.detect(
                    [images[i] for i in grounded], [phrases[i].text for i in grounded], p.box_threshold, p.text_threshold
                ),
                strict=True,
            )
        )
        selected = {
            i: select_boxes(det, p.nms_iou, p.max_boxes, p.box_policy, phrases[i].category) for i, det in detections.items()
        }
        boxed = [i for i, det in selected.items() if len(det)]
        segmented = dict(
            zip(
                boxed,
                self.models.segmenter.segment([images[i] for i in boxed], [selected[i].boxes_xyxy for i in boxed], p.mask_threshold),
                strict=True,
            )
        )
        labels = []
        for i, item in enumerate(items):
            text = {"caption": captions[i], "phrase": phrases[i].text, "category": phrases[i].category or None}
            det = selected.get(i)
            boxes = {}
            if det is not None and len(det):
                boxes = {
                    "boxes_xyxy": det.boxes_xyxy.round(2).tolist(),
                    "box_scores": det.scores.tolist(),
                    "box_labels": det.labels,
                }
            if not phrases[i].text:
                reason = f"no object phrase in caption {captions[i]!r}"
            elif det is None or not len(det):
                reason = f"no box for {phrases[i].text!r} above box_threshold={p.box_threshold}"
            else:
                masks = segmented[i]
                merged = masks.masks.any(axis=0)
                if merged.any():
                    signals = measure(merged, det.scores, masks.pred_iou, masks.stability, det.boxes_xyxy)
                    labels.append(self._base(item, shard, status="ok", mask_rle=encode_rle(merged), **text, **boxes, **vars(signals)))
                    continue
                reason = f"SAM returned an empty mask for {len(det)} box(es)"
            labels.append(self._base(item, shard, status="no_object", error=reason, box_count=len(boxes.get("box_scores", [])), **text, **boxes))
        return labels


def _release_gpu_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
