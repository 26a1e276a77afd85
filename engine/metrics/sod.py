"""SOD metrics over a dataset, computed by PySODMetrics (``py_sod_metrics``); nothing re-implemented.

Protocol (PySODMetrics / PySODEvalToolkit): ground truth binarised at ``> 128``; each prediction
scaled to [0, 1] and min-max normalised per image; every measure averaged over images; mean and
max F / E from the dataset-averaged curve over 256 thresholds (``pred >= t / 255``); adaptive F / E
at ``2 * mean(pred)``. F-measure uses beta^2 = 0.3 (the library's ``beta`` *is* beta^2),
S-measure alpha = 0.5, weighted F beta = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from py_sod_metrics import (
    MAE,
    Emeasure,
    FmeasureHandler,
    FmeasureV2,
    PrecisionHandler,
    RecallHandler,
    Smeasure,
    WeightedFmeasure,
)
from py_sod_metrics.utils import prepare_data

METRIC_KEYS: tuple[str, ...] = ("MAE", "Smeasure", "wFmeasure", "adpFm", "meanFm", "maxFm", "adpEm", "meanEm", "maxEm")
"""The dataset-level measures, in report order (DESIGN.md contract 6)."""

PER_IMAGE_KEYS: tuple[str, ...] = ("MAE", "Smeasure", "wFmeasure", "adpFm", "adpEm")
"""Measures that exist per image (mean/max F and E exist only for the dataset's averaged curve)."""

THRESHOLDS = np.arange(256, dtype=np.float64) / 255.0
"""The 256 binarisation thresholds of the curves: index ``t`` means ``pred >= t / 255``."""


@dataclass(frozen=True)
class DatasetScores:
    """Dataset-level results: ``metrics`` (keys :data:`METRIC_KEYS`), image count and the curves.

    Curves are ``(256,) float64`` indexed by threshold ``t / 255`` (ascending): ``precision``,
    ``recall``, ``fmeasure`` (beta^2 = 0.3) and ``emeasure``, each averaged over images.
    """

    metrics: dict[str, float]
    images: int
    precision: np.ndarray
    recall: np.ndarray
    fmeasure: np.ndarray
    emeasure: np.ndarray


class SODMetrics:
    """Accumulates PySODMetrics' measures image by image; :meth:`results` averages them.

    Example:
        >>> acc = SODMetrics()
        >>> gt = np.zeros((4, 4), np.uint8); gt[:2] = 255
        >>> round(acc.step(gt.copy(), gt)["MAE"], 6)
        0.0
    """

    def __init__(self, beta2: float = 0.3, alpha: float = 0.5, weighted_beta: float = 1.0):
        self.mae = MAE()
        self.sm = Smeasure(alpha=alpha)
        self.wfm = WeightedFmeasure(beta=weighted_beta)
        self.em = Emeasure()
        self.fm = FmeasureV2(
            metric_handlers={
                "fm": FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=beta2),
                "pre": PrecisionHandler(with_dynamic=True, with_adaptive=False),
                "rec": RecallHandler(with_dynamic=True, with_adaptive=False),
            }
        )
        self.images = 0

    def step(self, pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
        """Score one image; returns its :data:`PER_IMAGE_KEYS` measures.

        Args:
            pred: ``(H, W) uint8`` prediction in [0, 255] (min-max normalised here, per image).
            gt: ``(H, W) uint8`` ground truth in [0, 255] (foreground where ``> 128``).
        """
        for name, array in (("prediction", pred), ("ground truth", gt)):
            if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 2:
                raise TypeError(f"{name} must be an (H, W) uint8 array, got {getattr(array, 'dtype', type(array))} "
                                f"{getattr(array, 'shape', '')}")
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ; resize first")
        pred01, gt_bool = prepare_data(pred, gt)
        for metric in (self.mae, self.sm, self.wfm, self.em, self.fm):
            metric.step(pred01, gt_bool, normalize=False)
        self.images += 1
        return {
            "MAE": float(self.mae.maes[-1]),
            "Smeasure": float(self.sm.sms[-1]),
            "wFmeasure": float(self.wfm.weighted_fms[-1]),
            "adpFm": float(self.fm._metric_handlers["fm"].adaptive_results[-1]),
            "adpEm": float(self.em.adaptive_ems[-1]),
        }

    def results(self) -> DatasetScores:
        """Averaged measures and curves; raises ``ValueError`` when no image was scored."""
        if self.images == 0:
            raise ValueError("no image was scored: nothing to average")
        fm = self.fm.get_results()
        em = self.em.get_results()["em"]
        # The library orders curves from threshold 255 down to 0; flip to ascending thresholds.
        fm_curve = np.flip(fm["fm"]["dynamic"]).astype(np.float64)
        em_curve = np.flip(em["curve"]).astype(np.float64)
        metrics = {
            "MAE": float(self.mae.get_results()["mae"]),
            "Smeasure": float(self.sm.get_results()["sm"]),
            "wFmeasure": float(self.wfm.get_results()["wfm"]),
            "adpFm": float(fm["fm"]["adaptive"]),
            "meanFm": float(fm_curve.mean()),
            "maxFm": float(fm_curve.max()),
            "adpEm": float(em["adp"]),
            "meanEm": float(em_curve.mean()),
            "maxEm": float(em_curve.max()),
        }
        return DatasetScores(
            metrics=metrics,
            images=self.images,
            precision=np.flip(fm["pre"]["dynamic"]).astype(np.float64),
            recall=np.flip(fm["rec"]["dynamic"]).astype(np.float64),
            fmeasure=fm_curve,
            emeasure=em_curve,
        )


def score_dataset(pairs) -> DatasetScores:
    """Score an iterable of ``(pred, gt)`` ``(H, W) uint8`` pairs (same sizes) in one go."""
    acc = SODMetrics()
    for pred, gt in pairs:
        acc.step(pred, gt)
    return acc.results()
