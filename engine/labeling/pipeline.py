"""Caption -> phrase -> boxes -> masks -> quality, for a batch of prepared images.

The work is split in three so each runs where it belongs:

* preparation (decode, resize, pad, normalise; :mod:`engine.labeling.prepare`) on worker threads;
* :meth:`Labeler.run_models` on the model thread: BLIP ``generate`` for the batch, one GroundingDINO
  call per canvas, one SAM encoder call and one SAM decoder call for all boxes of the batch;
* :meth:`Labeler.finish` on worker threads: masks to full size, union, quality signals, COCO RLE.

A batch that fails inside a model is split in halves and retried, down to single images, so one
odd image (or a GPU out-of-memory on a large batch) costs at most that image, never the batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from engine.labeling.boxes import select_boxes
from engine.labeling.identity import code_identity, runtime_identity
from engine.labeling.phrase import Phrase, extract_phrase
from engine.labeling.prepare import ImageItem, PreparedBatch, Preparer
from engine.labeling.quality import measure
from engine.labeling.record import PseudoLabel
from engine.masks import encode_rle
from engine.models.outputs import Detections
from engine.models.registry import load_model
from engine.models.runtime import resolve_runtime
from engine.models.timing import timed
from engine.params import LabelParams, ModelsParams
from engine.storage import fingerprint

log = logging.getLogger(__name__)

__all__ = ["ImageItem", "LabelModels", "Labeler", "Pending", "labelling_run_id", "load_label_models"]


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

    @property
    def runtime(self) -> Any:
        return getattr(self.captioner, "runtime", None)


def load_label_models(params: ModelsParams, profile: str | None = None) -> LabelModels:
    """Load (or reuse, per process) the captioner, grounder and segmenter of ``profile``."""
    runtime = resolve_runtime(params.device, params.precision, params.compile)
    specs = params.specs(profile)
    return LabelModels(*(load_model(specs[role], runtime) for role in ("captioner", "grounder", "segmenter")))


def labelling_run_id(identities: dict[str, Any], params: LabelParams) -> str:
    """A labelling run is identified by what shapes its labels, so a rerun resumes it and any change
    starts a new run: ``identities`` (model weights by role and the ``runtime`` device type and
    precision, as :attr:`LabelModels.identity` gives them), the label parameters, and the labelling
    code and library versions (:mod:`engine.labeling.identity`)."""
    return fingerprint(identities, params.result_params(), code_identity(), length=6)


@dataclass
class Pending:
    """One image after the models, before :meth:`Labeler.finish` (low-res masks not yet upscaled)."""

    item: ImageItem
    error: str | None = None
    caption: str | None = None
    phrase: Phrase | None = None
    detections: Detections | None = None
    masks: Any = None  # the segmenter's low-res output for ``detections`` (``finish`` turns it into BoxMasks)


class Labeler:
    """Labels batches of images with one set of models and parameters."""

    def __init__(self, models: LabelModels, params: LabelParams, run_id: str):
        self.models = models
        self.params = params
        self.run_id = run_id
        runtime = models.runtime
        on_gpu = runtime is not None and runtime.device.type == "cuda"
        self.preparer = Preparer(models, params.ground_pad_multiple, normalize_now=not on_gpu, pin_memory=on_gpu)

    def label_batch(self, items: list[ImageItem], shard: str) -> list[PseudoLabel]:
        """One label per item, in order; never raises for a bad image (all steps on this thread)."""
        batch = self.preparer.collate([self.preparer.prepare(item) for item in items])
        return [self.finish(pending, shard) for pending in self.run_models(batch)]

    def run_models(self, batch: PreparedBatch) -> list[Pending]:
        """The model stage for a prepared batch: one :class:`Pending` per item, in order."""
        pending = [Pending(item, error=item.error or f"{item.path}: unreadable") for item in batch.items]
        for index, result in zip(batch.good, self._run_robust(batch), strict=True):
            pending[index] = result
        return pending

    def _run_robust(self, batch: PreparedBatch) -> list[Pending]:
        rows = len(batch.good)
        if not rows:
            return []
        try:
            return self._run(batch)
        except Exception as err:  # a model failed on this batch: isolate the image(s) responsible
            if rows == 1:
                item = batch.items[batch.good[0]]
                log.warning("labelling failed for %s: %s", item.path, err)
                return [Pending(item, error=f"{item.path}: labelling failed ({type(err).__name__}: {err})")]
            _release_gpu_memory()
            half = rows // 2
            return self._run_robust(batch.subset(list(range(half)))) + self._run_robust(batch.subset(list(range(half, rows))))

    def _run(self, batch: PreparedBatch) -> list[Pending]:
        p, models = self.params, self.models
        items = [batch.items[i] for i in batch.good]
        captions = models.captioner.caption_pixels(batch.caption, p.caption_prompt, p.max_new_tokens, p.num_beams)
        phrases = [extract_phrase(caption) for caption in captions]
        results = [Pending(item, caption=c, phrase=ph) for item, c, ph in zip(items, captions, phrases, strict=True)]
        for rows, pixels in batch.ground:
            asked = [j for j, row in enumerate(rows) if phrases[row].text]
            if not asked:
                continue
            found = models.grounder.detect_pixels(
                pixels.subset(asked), [phrases[rows[j]].text for j in asked], p.box_threshold, p.text_threshold
            )
            for j, detections in zip(asked, found, strict=True):
                row = rows[j]
                results[row].detections = select_boxes(detections, p.nms_iou, p.max_boxes, p.box_policy, phrases[row].category)
        boxed = [row for row, r in enumerate(results) if r.detections is not None and len(r.detections)]
        if boxed:
            low = models.segmenter.segment_pixels(
                batch.segment.subset(boxed), [results[row].detections.boxes_xyxy for row in boxed], p.sam_multimask
            )
            for row, masks in zip(boxed, low, strict=True):
                results[row].masks = masks
        return results

    def finish(self, pending: Pending, shard: str) -> PseudoLabel:
        """Masks to full size, union, quality signals and RLE; never raises for one image."""
        try:
            with timed("finish"):
                return self._finish(pending, shard)
        except Exception as err:  # noqa: BLE001 - a failure here costs only this image
            log.warning("finishing the label of %s failed: %s", pending.item.path, err)
            error = f"{pending.item.path}: labelling failed ({type(err).__name__}: {err})"
            return self._base(pending.item, shard, status="error", error=error)

    def _finish(self, pending: Pending, shard: str) -> PseudoLabel:
        item, p = pending.item, self.params
        if pending.error is not None:
            return self._base(item, shard, status="error", error=pending.error)
        phrase, det = pending.phrase, pending.detections
        text = {"caption": pending.caption, "phrase": phrase.text, "category": phrase.category or None}
        boxes = {}
        if det is not None and len(det):
            boxes = {"boxes_xyxy": det.boxes_xyxy.round(2).tolist(), "box_scores": det.scores.tolist(), "box_labels": det.labels}
        if not phrase.text:
            reason = f"no object phrase in caption {pending.caption!r}"
        elif det is None or not len(det):
            reason = f"no box for {phrase.text!r} above box_threshold={p.box_threshold}"
        else:
            masks = self.models.segmenter.finish(pending.masks, p.mask_threshold)
            merged = masks.masks.any(axis=0)
            if merged.any():
                signals = measure(merged, det.scores, masks.pred_iou, masks.stability, det.boxes_xyxy)
                return self._base(item, shard, status="ok", mask_rle=encode_rle(merged), **text, **boxes, **vars(signals))
            reason = f"SAM returned an empty mask for {len(det)} box(es)"
        return self._base(item, shard, status="no_object", error=reason, box_count=len(boxes.get("box_scores", [])), **text, **boxes)

    def _base(self, item: ImageItem, shard: str, **fields) -> PseudoLabel:
        height, width = item.size_hw if item.size_hw is not None else (None, None)
        return PseudoLabel(item.image_id, item.path, self.run_id, shard, height=height, width=width, **fields)


def _release_gpu_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass
