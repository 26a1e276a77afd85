"""PNG figures: PR curves, F-measure-vs-threshold curves, and TP/FP/FN overlays of the worst images.

Matplotlib runs on the Agg backend (no display needed); it is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from py_sod_metrics.utils import prepare_data

from engine.metrics.evaluate import DatasetReport, EvalItem
from engine.metrics.io import read_gray_u8, resize_to, to_gray_u8
from engine.metrics.report import safe_name, worst_records
from engine.metrics.sod import THRESHOLDS
from engine.storage import names_path

TP_RGB = (40, 200, 40)
FP_RGB = (230, 30, 30)
FN_RGB = (30, 100, 255)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_curves(reports: Sequence[DatasetReport], out_dir: str | Path, method: str) -> list[Path]:
    """``pr_curves.png`` (precision vs recall) and ``f_threshold.png`` (F and E vs threshold)."""
    plt = _pyplot()
    scored = [r for r in reports if r.scores is not None]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=110)
    for r in scored:
        ax.plot(r.scores.recall, r.scores.precision, label=f"{r.name} (maxFm {r.scores.metrics['maxFm']:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"PR curves: {method}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    paths.append(out_dir / "pr_curves.png")
    fig.tight_layout()
    with names_path(paths[-1]):
        fig.savefig(paths[-1])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=110)
    for r in scored:
        line = ax.plot(THRESHOLDS, r.scores.fmeasure, label=f"{r.name} F (beta^2 = 0.3)")[0]
        ax.plot(THRESHOLDS, r.scores.emeasure, linestyle="--", color=line.get_color(), label=f"{r.name} E")
    ax.set(xlabel="threshold", ylabel="score", xlim=(0, 1), title=f"F / E vs threshold: {method}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    paths.append(out_dir / "f_threshold.png")
    fig.tight_layout()
    with names_path(paths[-1]):
        fig.savefig(paths[-1])
    plt.close(fig)
    return paths


def overlay_tp_fp_fn(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5,
                     image: np.ndarray | None = None) -> np.ndarray:
    """Colour each pixel by outcome: TP green, FP red, FN blue, over a darkened image.

    Args:
        pred: ``(H, W) uint8`` prediction (min-max normalised here; foreground where ``>= threshold``).
        gt: ``(H, W) uint8`` ground truth (foreground where ``> 128``).
        threshold: in [0, 1].
        image: optional ``(H, W, 3) uint8`` RGB image of the same size; grey otherwise.

    Returns:
        ``(H, W, 3) uint8`` RGB.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ")
    pred01, truth = prepare_data(pred, gt)  # the library's own normalisation (min-max; gt > 128)
    fg = pred01 >= threshold
    base = image.astype(np.float64) if image is not None else np.full((*gt.shape, 3), 128.0)
    out = base * 0.5
    for mask, colour in ((fg & truth, TP_RGB), (fg & ~truth, FP_RGB), (~fg & truth, FN_RGB)):
        out[mask] = base[mask] * 0.35 + np.asarray(colour, np.float64) * 0.65
    return np.clip(out, 0, 255).astype(np.uint8)


def _panel(item: EvalItem, threshold: float) -> np.ndarray:
    from engine.images.io import ImageReadError, read_rgb

    gt = read_gray_u8(item.gt_path)
    raw = item.pred() if item.pred is not None else None
    pred = np.zeros_like(gt) if raw is None else resize_to(to_gray_u8(np.asarray(raw)), gt.shape)
    image = None
    if item.image_path is not None:
        try:
            rgb = read_rgb(item.image_path)
            image = np.asarray(Image.fromarray(rgb).resize((gt.shape[1], gt.shape[0]), Image.BILINEAR))
        except ImageReadError:
            image = None
    left = image if image is not None else np.repeat(gt[:, :, None], 3, axis=2)
    middle = np.repeat(pred[:, :, None], 3, axis=2)
    gap = np.full((gt.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([left, gap, middle, gap, overlay_tp_fp_fn(pred, gt, threshold, image)], axis=1)


def write_worst_overlays(report: DatasetReport, items: Sequence[EvalItem], out_dir: str | Path,
                         count: int, threshold: float = 0.5) -> list[Path]:
    """PNG panels (image | prediction | TP/FP/FN overlay) of the ``count`` highest-MAE images.

    Files are ``out_dir/<dataset>/NN_<stem>.png`` (NN = rank, 01 = worst). A file that cannot be
    read again is left out (it was already reported by the evaluation).
    """
    by_stem = {item.stem: item for item in items}
    folder = Path(out_dir) / safe_name(report.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    paths = []
    for rank, record in enumerate(worst_records(report, count), start=1):
        item = by_stem.get(record.stem)
        if item is None:
            continue
        try:
            panel = _panel(item, threshold)
        except (ValueError, TypeError):
            continue
        path = folder / f"{rank:02d}_{safe_name(record.stem)}.png"
        with names_path(path):
            Image.fromarray(panel).save(path)
        paths.append(path)
    return paths
