"""``sodforge evaluate`` (prediction folders vs benchmark masks) and ``sodforge evaluate-labels``
(a labelling run's or any label-shard folder's masks vs true masks). Both write the contract-6 metrics JSON and, with ``--out``,
tables, PR / F-threshold curves (PNG + DVC plot CSV) and TP/FP/FN overlays of the worst images."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sodforge.output import console, err_console, fail, literal, say, say_labelled

ParamsOpt = Annotated[Path | None, typer.Option(help="params.yaml to read the 'evaluate' section from "
                                                     "(default: ./params.yaml if present).")]
MissingOpt = Annotated[str | None, typer.Option(
    help="A ground-truth image without a usable prediction: error (stop, naming the files), "
         "empty (score as an all-zero map, warn per image) or skip (leave out, warn per image). "
         "Default: params.yaml evaluate.missing, else error.")]
WorstOpt = Annotated[int | None, typer.Option(help="Overlays for the N highest-MAE images per dataset (0: none).")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Metrics JSON to write (default: OUT/metrics.json).")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Folder for table.md, curves (PNG + CSV), overlays, details.")]


_fail = fail


def _setup_logging() -> None:
    from rich.logging import RichHandler

    logger = logging.getLogger("sodforge")
    if not logger.handlers:
        logger.addHandler(RichHandler(console=err_console, show_time=False, show_path=False))
        logger.setLevel(logging.INFO)


def _params(params: Path | None, missing: str | None, worst: int | None):
    from engine.metrics import EvaluateParams
    from engine.params import load_section

    if params is None and Path("params.yaml").is_file():
        params = Path("params.yaml")
    overrides = {k: v for k, v in {"missing": missing, "worst": worst}.items() if v is not None}
    return load_section(params, "evaluate", EvaluateParams, overrides)


def _show(reports, method: str, written: dict[str, str]) -> None:
    from engine.metrics import COUNT_KEYS, METRIC_KEYS, metrics_block

    table = Table("measure", title=literal(f"evaluation: {method}"))
    for report in reports:
        table.add_column(literal(report.name))
    blocks = [metrics_block(r) for r in reports]
    for key in METRIC_KEYS:
        table.add_row(key, *("-" if b[key] is None else f"{b[key]:.4f}" for b in blocks))
    for key in COUNT_KEYS:
        table.add_row(key, *(str(b[key]) for b in blocks))
    console.print(table)
    for report in reports:
        gaps = len(report.empty_predictions) + len(report.skipped)
        if gaps:
            say_labelled(f"{report.name}:", f"{len(report.empty_predictions)} scored as empty maps, "
                         f"{len(report.skipped)} skipped (see details.json)", "yellow")
    for kind, path in written.items():
        say(f"{kind:12s} {path}")


def evaluate(
    pred: Annotated[Path | None, typer.Option(help="Prediction folder (with --config: a folder holding one "
                                                   "sub-folder per dataset name).")] = None,
    gt: Annotated[Path | None, typer.Option(help="Ground-truth mask folder, or a data set folder: DUTS-TE-Image/ + "
                                                 "DUTS-TE-Mask/, images/ + masks/ or gt/, Image/ + Mask/ are found.")] = None,
    config: Annotated[Path | None, typer.Option(help="PySODEvalToolkit-style JSON of datasets "
                                                     "({name: {image, mask, optional pred}} or {name: DATASET_FOLDER}), "
                                                     "instead of --gt.")] = None,
    json_out: JsonOpt = None,
    out: OutOpt = None,
    method: Annotated[str | None, typer.Option(help="Row name in the tables (default: the --pred folder's name).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset name with --gt (default: the set folder's name).")] = None,
    images: Annotated[Path | None, typer.Option(help="Image folder for overlays with --gt (default: found beside the masks).")] = None,
    missing: MissingOpt = None,
    worst: WorstOpt = None,
    params: ParamsOpt = None,
) -> None:
    """Score saliency maps against ground-truth masks with PySODMetrics (MAE, S, wF, adp/mean/max F and E)."""
    from engine.metrics import (
        evaluate_folder_dataset,
        load_dataset_config,
        single_spec,
        with_pred_root,
        write_outputs,
    )

    _setup_logging()
    if (gt is None) == (config is None):
        _fail("give exactly one of --gt DIR or --config FILE")
    if pred is None and gt is not None:
        _fail("--pred DIR is required with --gt")
    try:
        settings = _params(params, missing, worst)
        specs = [single_spec(gt, pred, dataset, images)] if gt else [
            with_pred_root(s, pred) for s in load_dataset_config(config)]
        reports = [evaluate_folder_dataset(spec, out, settings) for spec in specs]
        method = method or (pred.resolve().name if pred else config.stem)
        written = write_outputs(reports, method, out, json_out, {"predictions": str(pred) if pred else None})
    except ValueError as err:
        _fail(str(err))
    if json_out is None and out is None:
        from engine.metrics import metrics_block

        typer.echo(json.dumps({r.name: metrics_block(r) for r in reports}, indent=2))
        return
    _show(reports, method, written)


def evaluate_labels(
    gt: Annotated[Path, typer.Option(help="True masks, matched to labelled images by file stem: a mask folder or a "
                                          "data set folder (DUTS-TE-Mask/, masks/ or gt/ found inside).")],
    workdir: Annotated[Path | None, typer.Option("--workdir", "-w", help="Workdir of a labelling run (catalog/labels/run=*/).")] = None,
    labels: Annotated[Path | None, typer.Option(help="Any folder of label shards instead of a workdir: *.parquet, or "
                                                     "run=*/ folders (e.g. from import-masks or refine --labels).")] = None,
    run: Annotated[str | None, typer.Option(help="Labelling run id (default: the newest).")] = None,
    json_out: JsonOpt = None,
    out: OutOpt = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset name (default: the mask folder's set name).")] = None,
    missing: MissingOpt = None,
    worst: WorstOpt = None,
    params: ParamsOpt = None,
) -> None:
    """Score pseudo-labels (a workdir's labelling run, or any label-shard folder) against true masks;
    labels not 'ok' count as empty maps."""
    from engine.metrics import evaluate_label_run, evaluate_label_shards, write_outputs

    _setup_logging()
    if (workdir is None) == (labels is None):
        _fail("give exactly one of --workdir DIR or --labels DIR")
    try:
        settings = _params(params, missing, worst)
        if workdir is not None:
            report, source = evaluate_label_run(workdir, gt, run, dataset, out, settings)
            method, extra = f"pseudo-labels {source}", {"labelling_run": source, "workdir": str(workdir)}
        else:
            report, source = evaluate_label_shards(labels, gt, run, dataset, out, settings)
            method, extra = f"labels {Path(source).name}", {"labels": source}
        extra["non_ok_labels"] = "labels whose status is not 'ok' are scored as empty predictions"
        written = write_outputs([report], method, out, json_out, extra)
    except ValueError as err:
        _fail(str(err))
    if json_out is None and out is None:
        from engine.metrics import metrics_block

        typer.echo(json.dumps({report.name: metrics_block(report)}, indent=2))
        return
    _show([report], method, written)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("evaluate-labels")(evaluate_labels)
