"""Evaluation outputs: the metrics JSON (DESIGN.md contract 6), details, tables and plot data.

Layout written under an output folder ``OUT``::

    OUT/metrics.json                 {dataset: {MAE, Smeasure, ..., maxEm, images, empty_predictions}}
    OUT/plots/pr/<dataset>.csv       threshold, precision, recall   (DVC plot: x=recall, y=precision)
    OUT/plots/fthreshold/<dataset>.csv threshold, fmeasure, emeasure (DVC plot: x=threshold, y=fmeasure)
    OUT/report/table.md              Markdown tables (seed Table 1 style + all measures)
    OUT/report/details.json          protocol, gaps (missing / unreadable / empty), resize counts
    OUT/report/per_image/<dataset>.csv per-image measures, worst MAE first
    OUT/report/datasets/<dataset>.json one dataset's full result (what Prefect tasks hand on)
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np

from engine.metrics.evaluate import DatasetReport, ImageRecord
from engine.metrics.sod import METRIC_KEYS, PER_IMAGE_KEYS, THRESHOLDS, DatasetScores
from engine.storage import write_text_atomic

COUNT_KEYS: tuple[str, ...] = ("images", "empty_predictions")
"""Integer keys beside the measures in each dataset's block of ``metrics.json``."""

PROTOCOL = {
    "library": "PySODMetrics (py_sod_metrics)",
    "ground_truth": "binarised at > 128",
    "prediction": "resized to the ground truth's size (bilinear), min-max normalised per image",
    "averaging": "per image",
    "Fmeasure": "beta^2 = 0.3; meanFm / maxFm from the dataset-averaged curve over 256 thresholds "
                "(pred >= t/255); adpFm at threshold 2 x mean(pred)",
    "Emeasure": "meanEm / maxEm from the dataset-averaged curve over 256 thresholds; adpEm at 2 x mean(pred)",
    "Smeasure": "alpha = 0.5",
    "wFmeasure": "beta = 1",
    "empty_predictions": "scored as an all-zero map: MAE = foreground fraction; note the library's threshold 0 "
                         "counts every pixel as foreground, so F at t = 0 is not 0",
    "overlay_colours": "green = true positive, red = false positive, blue = false negative",
}


def safe_name(name: str) -> str:
    """A dataset name usable as a file name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "dataset"


def metrics_block(report: DatasetReport) -> dict:
    """``{MAE, ..., maxEm, images, empty_predictions}`` of one dataset (measures None if nothing scored)."""
    scores = report.scores
    block: dict = {k: (round(scores.metrics[k], 6) if scores else None) for k in METRIC_KEYS}
    block["images"] = scores.images if scores else 0
    block["empty_predictions"] = len(report.empty_predictions)
    return block


def report_to_dict(report: DatasetReport) -> dict:
    """JSON-ready full result of one dataset (curves and per-image records included)."""
    scores = report.scores
    return {
        "name": report.name,
        "metrics": metrics_block(report),
        "curves": None if scores is None else {
            "precision": scores.precision.tolist(), "recall": scores.recall.tolist(),
            "fmeasure": scores.fmeasure.tolist(), "emeasure": scores.emeasure.tolist(),
        },
        "records": [vars(r) for r in report.records],
        "empty_predictions": report.empty_predictions,
        "skipped": report.skipped,
        "resized": report.resized,
        "unmatched_predictions": report.unmatched_predictions,
    }


def report_from_dict(data: dict) -> DatasetReport:
    """Inverse of :func:`report_to_dict`."""
    scores = None
    if data["curves"] is not None:
        metrics = {k: float(data["metrics"][k]) for k in METRIC_KEYS}
        curves = {k: np.asarray(v, dtype=np.float64) for k, v in data["curves"].items()}
        scores = DatasetScores(metrics, int(data["metrics"]["images"]), **curves)
    return DatasetReport(
        name=data["name"], scores=scores, records=[ImageRecord(**r) for r in data["records"]],
        empty_predictions=data["empty_predictions"], skipped=data["skipped"], resized=data["resized"],
        unmatched_predictions=data["unmatched_predictions"],
    )


def save_dataset_report(report: DatasetReport, out_dir: str | Path) -> Path:
    """Write ``OUT/report/datasets/<name>.json``; returns its path."""
    path = Path(out_dir) / "report" / "datasets" / f"{safe_name(report.name)}.json"
    return write_text_atomic(json.dumps(report_to_dict(report)), path)


def load_dataset_report(path: str | Path) -> DatasetReport:
    return report_from_dict(json.loads(Path(path).read_text()))


def write_metrics_json(reports: list[DatasetReport], path: str | Path) -> Path:
    """The contract-6 JSON: ``{dataset: {MAE, Smeasure, ..., maxEm, images, empty_predictions}}``."""
    names = [r.name for r in reports]
    if len(set(names)) != len(names):
        raise ValueError(f"dataset names must be unique, got {names}")
    return write_text_atomic(json.dumps({r.name: metrics_block(r) for r in reports}, indent=2) + "\n", path)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}".replace("0.", ".", 1) if 0 <= value < 1 else f"{value:.3f}"


def markdown_table(reports: list[DatasetReport], method: str) -> str:
    """Two Markdown tables: the seeds' Table 1 layout (MAE / adpFm / meanEm per dataset, one row per
    method) and every measure per dataset."""
    head = ["Method"] + [f"{r.name} {k}" for r in reports for k in ("MAE↓", "adpFm↑", "meanEm↑")]
    row = [method] + [_fmt(metrics_block(r)[k]) for r in reports for k in ("MAE", "adpFm", "meanEm")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), "| " + " | ".join(row) + " |", ""]
    full = ["Dataset", *METRIC_KEYS, *COUNT_KEYS]
    lines += ["| " + " | ".join(full) + " |", "|" + "---|" * len(full)]
    for r in reports:
        block = metrics_block(r)
        cells = [r.name] + [_fmt(block[k]) for k in METRIC_KEYS] + [str(block[k]) for k in COUNT_KEYS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "MAE lower is better; all others higher. F: beta^2 = 0.3; adp = adaptive threshold "
              "(2 x mean), mean/max over 256 thresholds; PySODMetrics definitions, per-image averaging."]
    return "\n".join(lines) + "\n"


def write_plot_data(report: DatasetReport, out_dir: str | Path) -> list[Path]:
    """DVC plot data (CSV, 256 rows): the PR curve and the F/E-vs-threshold curves of one dataset."""
    if report.scores is None:
        return []
    s, name = report.scores, safe_name(report.name)
    out = Path(out_dir) / "plots"
    tables = {
        out / "pr" / f"{name}.csv": (("threshold", "precision", "recall"), (THRESHOLDS, s.precision, s.recall)),
        out / "fthreshold" / f"{name}.csv": (("threshold", "fmeasure", "emeasure"), (THRESHOLDS, s.fmeasure, s.emeasure)),
    }
    for path, (header, columns) in tables.items():
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(header)
        writer.writerows(zip(*(np.round(c, 6).tolist() for c in columns), strict=True))
        write_text_atomic(text.getvalue(), path)
    return list(tables)


def write_per_image(report: DatasetReport, out_dir: str | Path) -> Path:
    """``OUT/report/per_image/<name>.csv``: one row per scored image, worst MAE first."""
    path = Path(out_dir) / "report" / "per_image" / f"{safe_name(report.name)}.csv"
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["stem", *PER_IMAGE_KEYS, "prediction", "ground_truth", "note"])
    for rec in worst_records(report, len(report.records)):
        writer.writerow([rec.stem, *(round(rec.measures[k], 6) for k in PER_IMAGE_KEYS),
                         rec.source, rec.gt_path, rec.note or ""])
    return write_text_atomic(text.getvalue(), path)


def worst_records(report: DatasetReport, count: int) -> list[ImageRecord]:
    """The ``count`` records with the highest MAE (ties by stem)."""
    return sorted(report.records, key=lambda r: (-r.measures["MAE"], r.stem))[:count]


def details(reports: list[DatasetReport], method: str, extra: dict | None = None) -> dict:
    """Protocol and every gap of every dataset, for ``OUT/report/details.json``."""
    return {
        "method": method,
        "protocol": PROTOCOL,
        **(extra or {}),
        "datasets": {
            r.name: {
                **metrics_block(r),
                "resized_predictions": r.resized,
                "skipped": r.skipped,
                "empty_prediction_list": r.empty_predictions,
                "predictions_without_ground_truth": len(r.unmatched_predictions),
                "predictions_without_ground_truth_examples": r.unmatched_predictions[:10],
            }
            for r in reports
        },
    }
