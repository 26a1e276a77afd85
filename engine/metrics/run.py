"""Whole evaluations: score datasets (prediction folders or a labelling run) and write every output.

The per-dataset step (:func:`evaluate_folder_dataset`, :func:`evaluate_label_run`) and the final
step (:func:`write_outputs`) are separate so Prefect can map the first over datasets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from engine.catalog.layout import Workdir
from engine.images.layout import find_layout
from engine.metrics.benchmarks import DatasetSpec, Folder, folder_items
from engine.metrics.evaluate import DatasetReport, EvalItem, evaluate_items
from engine.metrics.labels import label_items, latest_run_id, read_run_labels, read_shard_labels
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


def _gt_folder(gt: str | Path) -> tuple[Folder, str]:
    """The mask folder of ``gt`` (a mask folder or a data set folder) and the data set's name."""
    if not Path(gt).is_dir():
        raise ValueError(f"{gt}: ground-truth folder not found")
    layout = find_layout(gt, "masks").require("masks")
    return Folder(layout.masks), layout.name


def _score_labels(rows: list[dict], gt: str | Path, what: str, name: str | None, out_dir: str | Path | None,
                  params: EvaluateParams | None) -> DatasetReport:
    params = params or EvaluateParams()
    folder, set_name = _gt_folder(gt)
    items, unmatched = label_items(rows, folder, what)
    report = evaluate_items(name or set_name, items, params, unmatched)
    return _dataset_outputs(report, items, Path(out_dir) if out_dir else None, params)


def evaluate_label_run(workdir: str | Path, gt: str | Path, run_id: str | None = None,
                       name: str | None = None, out_dir: str | Path | None = None,
                       params: EvaluateParams | None = None) -> tuple[DatasetReport, str]:
    """Score the masks of labelling run ``run_id`` (default: the newest) against the masks in ``gt``.

    ``gt`` is a mask folder or a data set folder (``DUTS-TE-Mask/`` found in ``DUTS-TE-1k/``).
    Labels whose status is not ``ok`` count as empty predictions. Returns the report and the run id.
    """
    wd = Workdir.at(workdir)
    run_id = run_id or latest_run_id(wd)
    return _score_labels(read_run_labels(wd, run_id), gt, f"run {run_id}", name, out_dir, params), run_id


def evaluate_label_shards(labels: str | Path, gt: str | Path, run_id: str | None = None,
                          name: str | None = None, out_dir: str | Path | None = None,
                          params: EvaluateParams | None = None) -> tuple[DatasetReport, str]:
    """Score any folder of label shards against the masks in ``gt`` (same rules as :func:`evaluate_label_run`).

    ``labels`` holds ``*.parquet`` label shards, or ``run=<id>/`` folders of them (``run_id`` picks
    one; default the newest), e.g. the output of ``import-masks`` or ``refine --labels``. Returns the
    report and the folder whose shards were scored.
    """
    from engine.sod.data import find_label_shards

    shards = find_label_shards(labels, run_id)
    folder = str(shards[0].parent)
    return _score_labels(read_shard_labels(shards), gt, f"labels in {folder}", name, out_dir, params), folder


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
