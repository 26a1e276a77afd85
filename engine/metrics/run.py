"""Whole evaluations: score datasets (prediction folders or a labelling run) and write every output.

The per-dataset step (:func:`evaluate_folder_dataset`, :func:`evaluate_label_run`) and the final
step (:func:`write_outputs`) are separate so Prefect can map the first over datasets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from engine.catalog.layout import Workdir
from engine.metrics.benchmarks import DatasetSpec, Folder, folder_items
from engine.metrics.evaluate import DatasetReport, EvalItem, evaluate_items
from engine.metrics.labels import label_items, latest_run_id
from engine.metrics.params import EvaluateParams
from engine.metrics.plots import plot_curves, write_worst_overlays
from engine.metrics.report import (
    details,
    markdown_table,
    save_dataset_report,
    write_metrics_json,
    write_per_image,
    write_plot_data,
)
from engine.storage import write_text_atomic


def _dataset_outputs(report: DatasetReport, items: Sequence[EvalItem], out_dir: Path | None,
                     params: EvaluateParams) -> DatasetReport:
    if out_dir is not None:
        save_dataset_report(report, out_dir)
        write_plot_data(report, out_dir)
        write_per_image(report, out_dir)
        if params.worst:
            write_worst_overlays(report, items, out_dir / "report" / "overlays", params.worst,
                                 params.overlay_threshold)
    return report


def evaluate_folder_dataset(spec: DatasetSpec, out_dir: str | Path | None = None,
                            params: EvaluateParams | None = None) -> DatasetReport:
    """Score the prediction folder of ``spec`` against its masks; with ``out_dir``, write the
    dataset's plot data, per-image CSV, overlays and ``report/datasets/<name>.json``."""
    params = params or EvaluateParams()
    items, unmatched = folder_items(spec)
    report = evaluate_items(spec.name, items, params, unmatched)
    return _dataset_outputs(report, items, Path(out_dir) if out_dir else None, params)


def evaluate_label_run(workdir: str | Path, gt: str | Path, run_id: str | None = None,
                       name: str | None = None, out_dir: str | Path | None = None,
                       params: EvaluateParams | None = None) -> tuple[DatasetReport, str]:
    """Score the masks of labelling run ``run_id`` (default: the newest) against the masks in ``gt``.

    Labels whose status is not ``ok`` count as empty predictions. Returns the report and the run id.
    """
    params = params or EvaluateParams()
    wd = Workdir.at(workdir)
    run_id = run_id or latest_run_id(wd)
    gt = Path(gt)
    if not gt.is_dir():
        raise ValueError(f"{gt}: ground-truth folder not found")
    items, unmatched = label_items(wd, run_id, Folder(gt))
    name = name or (gt.parent.name if gt.name in ("masks", "Mask", "mask", "GT", "gt") else gt.name)
    report = evaluate_items(name, items, params, unmatched)
    return _dataset_outputs(report, items, Path(out_dir) if out_dir else None, params), run_id


def write_outputs(reports: Sequence[DatasetReport], method: str, out_dir: str | Path | None = None,
                  json_path: str | Path | None = None, extra: dict | None = None) -> dict[str, str]:
    """Write the metrics JSON, ``table.md``, ``details.json`` and the curve PNGs; returns their paths.

    ``json_path`` defaults to ``out_dir/metrics.json``; with neither, nothing is written.
    """
    reports = list(reports)
    written: dict[str, str] = {}
    out = Path(out_dir) if out_dir else None
    if json_path is None and out is not None:
        json_path = out / "metrics.json"
    if json_path is not None:
        written["metrics"] = str(write_metrics_json(reports, json_path))
    if out is not None:
        report_dir = out / "report"
        report_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(markdown_table(reports, method), report_dir / "table.md")
        write_text_atomic(json.dumps(details(reports, method, extra), indent=2) + "\n", report_dir / "details.json")
        written["table"] = str(report_dir / "table.md")
        written["details"] = str(report_dir / "details.json")
        for path in plot_curves(reports, report_dir, method):
            written[path.stem] = str(path)
        written["overlays"] = str(report_dir / "overlays")
    return written
