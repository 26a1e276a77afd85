"""Score one dataset: ground-truth images paired with predictions, under an explicit gap policy.

A dataset is a list of :class:`EvalItem` (one per ground-truth image). Where the prediction comes
from (a folder of maps, a label shard's RLE masks) is the caller's business: ``EvalItem.pred`` loads
it. Gaps are never silent: every missing, unreadable or empty prediction is counted and named in the
:class:`DatasetReport`, and logged as a warning naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.metrics.io import read_gray_u8, resize_to, to_gray_u8
from engine.metrics.params import EvaluateParams
from engine.metrics.sod import DatasetScores, SODMetrics

log = logging.getLogger("sodforge.metrics")

PredLoader = Callable[[], "np.ndarray | None"]


@dataclass(frozen=True)
class EvalItem:
    """One ground-truth image and its prediction.

    ``pred`` is ``None`` when no prediction exists (the gap policy decides); otherwise a loader that
    returns an ``(h, w)`` bool / uint8 / float-in-[0, 1] map, returns ``None`` for an intentionally
    empty prediction (e.g. a label whose status is not ``ok``: scored as an all-zero map, with
    ``note`` saying why), or raises ``ValueError`` for an unreadable one. ``source`` names the
    prediction (a file path, or where it was expected) in messages.
    """

    stem: str
    gt_path: Path
    pred: PredLoader | None
    source: str
    image_path: Path | None = None
    note: str | None = None


@dataclass
class ImageRecord:
    """One scored image: its per-image measures and why it is special, if it is."""

    stem: str
    gt_path: str
    source: str
    measures: dict[str, float]
    image_path: str | None = None
    note: str | None = None


@dataclass
class DatasetReport:
    """Everything one dataset's evaluation found (``scores`` is ``None`` when nothing was scored)."""

    name: str
    scores: DatasetScores | None
    records: list[ImageRecord] = field(default_factory=list)
    empty_predictions: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    resized: int = 0
    unmatched_predictions: list[str] = field(default_factory=list)


class _Gap(Exception):
    """A prediction or ground truth that cannot be used, with the reason."""


def _missing_error(name: str, items: Sequence[EvalItem]) -> ValueError:
    missing = [item for item in items if item.pred is None]
    shown = "; ".join(f"{item.stem} (expected {item.source})" for item in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return ValueError(
        f"{name}: {len(missing)} of {len(items)} ground-truth images have no prediction: {shown}{more}. "
        "Provide them, or choose --missing empty (score as empty maps) or --missing skip."
    )


def _load_gt(item: EvalItem) -> np.ndarray:
    try:
        return read_gray_u8(item.gt_path)
    except ValueError as err:
        raise _Gap(f"unreadable ground truth: {err}") from err


def _load_pred(item: EvalItem, size_hw: tuple[int, int]) -> tuple[np.ndarray | None, bool]:
    """The prediction as ``uint8`` at ``size_hw`` (``None`` = intentionally empty) and whether it was resized."""
    if item.pred is None:
        raise _Gap(f"no prediction (expected {item.source})")
    try:
        raw = item.pred()
        if raw is None:
            return None, False
        pred = to_gray_u8(np.asarray(raw))
    except (ValueError, TypeError) as err:
        raise _Gap(f"unreadable prediction {item.source}: {err}") from err
    return resize_to(pred, size_hw), pred.shape != tuple(size_hw)


def evaluate_items(name: str, items: Sequence[EvalItem], params: EvaluateParams | None = None,
                   unmatched_predictions: Sequence[str] = ()) -> DatasetReport:
    """Score every item of dataset ``name`` with PySODMetrics (see :mod:`engine.metrics.sod`).

    Raises:
        ValueError: under ``missing='error'``, when any prediction is missing (before scoring) or
            unreadable, or a ground truth is unreadable; the message names the files.
    """
    params = params or EvaluateParams()
    if params.missing == "error" and any(item.pred is None for item in items):
        raise _missing_error(name, items)
    acc = SODMetrics()
    report = DatasetReport(name=name, scores=None, unmatched_predictions=list(unmatched_predictions))
    for item in items:
        note = item.note
        try:
            gt = _load_gt(item)
            try:
                pred, resized = _load_pred(item, gt.shape)
            except _Gap as gap:
                if params.missing == "error":
                    raise
                if params.missing == "skip":
                    raise _Gap(str(gap)) from gap
                pred, resized, note = None, False, f"{gap}; scored as an empty map"
        except _Gap as gap:
            if params.missing == "error":
                raise ValueError(f"{name}/{item.stem}: {gap}") from gap
            log.warning("%s/%s skipped: %s", name, item.stem, gap)
            report.skipped.append({"stem": item.stem, "gt": str(item.gt_path), "reason": str(gap)})
            continue
        if pred is None:
            pred = np.zeros_like(gt)
            note = note or "empty prediction"
            where = "" if item.source in note else f" ({item.source})"
            log.warning("%s/%s: %s%s", name, item.stem, note, where)
            report.empty_predictions.append({"stem": item.stem, "source": item.source, "reason": note})
        report.resized += int(resized)
        measures = acc.step(pred, gt)
        report.records.append(ImageRecord(
            item.stem, str(item.gt_path), item.source, measures,
            str(item.image_path) if item.image_path else None, note,
        ))
    report.scores = acc.results() if acc.images else None
    if report.scores is None:
        log.warning("%s: no image could be scored", name)
    return report
