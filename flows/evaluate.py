"""Flow ``evaluate``: score prediction folders (or a labelling run's pseudo-labels) against masks.

Two modes, chosen by the parameters:

- predictions: ``pred`` + ``gt`` (one dataset) or ``pred`` + ``config`` (PySODEvalToolkit-style
  JSON, predictions in ``pred/<dataset>``), e.g. a trained model's ``predict`` output;
- pseudo-labels: ``workdir`` + ``gt`` (the newest labelling run, or ``run_id``).

Writes ``out/metrics.json`` (DESIGN.md contract 6), tables, curves and overlays (see
:mod:`engine.metrics.report`) and publishes a table artifact (the metrics) and a markdown artifact
(the table and the PNG paths). Deployed as ``evaluate/default`` (pseudo-labels of ``data/``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from engine.metrics import EvaluateParams, load_dataset_config, single_spec, spec_to_dict, with_pred_root
from engine.metrics.sod import METRIC_KEYS
from engine.params import load_section
from tasks.evaluate import evaluate_dataset_task, evaluate_labels_task, write_outputs_task


def resolve_params(params_file: str | None, missing: str | None, worst: int | None) -> EvaluateParams:
    """params.yaml's ``evaluate`` section (if the file exists) plus the flow's own overrides."""
    path = Path(params_file) if params_file else None
    overrides = {k: v for k, v in {"missing": missing, "worst": worst}.items() if v is not None}
    return load_section(path if path and path.is_file() else None, "evaluate", EvaluateParams, overrides)


def _prediction_reports(pred: str, gt: str | None, config: str | None, dataset: str | None, out: str,
                        params: dict) -> list[str]:
    if (gt is None) == (config is None):
        raise ValueError("give exactly one of gt (a mask folder) or config (a dataset JSON) with pred")
    specs = [single_spec(gt, pred, dataset)] if gt else [with_pred_root(s, pred) for s in load_dataset_config(config)]
    futures = [evaluate_dataset_task.submit(spec_to_dict(s), out, params) for s in specs]
    return [f.result() for f in futures]


def _publish(result: dict[str, Any], method: str) -> None:
    rows = [{"dataset": name, **{k: block[k] for k in (*METRIC_KEYS, "images", "empty_predictions")}}
            for name, block in result["metrics"].items()]
    create_table_artifact(rows, key="evaluation-metrics", description=f"SOD metrics of {method} (PySODMetrics)")
    paths = result["paths"]
    table = Path(paths["table"]).read_text() if "table" in paths else ""
    figures = "\n".join(f"- {kind}: `{path}`" for kind, path in paths.items())
    create_markdown_artifact(f"# Evaluation: {method}\n\n{table}\n## Files\n{figures}\n",
                             key="evaluation-report", description=f"Tables and figures of {method}")


@flow(name="evaluate", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def evaluate(
    pred: str | None = None,
    gt: str | None = None,
    config: str | None = None,
    workdir: str | None = None,
    run_id: str | None = None,
    out: str = "data/reports/evaluate",
    json_path: str | None = None,
    method: str | None = None,
    dataset: str | None = None,
    missing: Literal["error", "empty", "skip"] | None = None,
    worst: int | None = None,
    params_file: str | None = "params.yaml",
) -> dict[str, Any]:
    """Score saliency maps (``pred``) or a labelling run's masks (``workdir``) against ground truth.

    Args:
        pred: prediction folder (with ``config``: one sub-folder per dataset).
        gt: ground-truth mask folder, or a set folder with ``Mask/`` / ``masks/``.
        config: PySODEvalToolkit-style dataset JSON (instead of ``gt``).
        workdir: evaluate the pseudo-labels of this workdir's labelling run instead of ``pred``.
        run_id: labelling run (default: the newest).
        out: output folder; ``json_path`` defaults to ``out/metrics.json``.
        method: row name in the tables.
        dataset: dataset name for ``gt``.
        missing: ``error`` / ``empty`` / ``skip`` for GT images without a usable prediction.
        worst: overlays for the N highest-MAE images per dataset.
        params_file: parameters file (``evaluate`` section); missing means defaults.

    Returns:
        ``{"metrics": {dataset: {...}}, "paths": {...}}``.
    """
    params = resolve_params(params_file, missing, worst)
    params_dict = dataclasses.asdict(params)
    extra: dict[str, Any] = {}
    if pred is not None:
        report_paths = _prediction_reports(pred, gt, config, dataset, out, params_dict)
        method = method or Path(pred).resolve().name
        extra["predictions"] = pred
    elif workdir is not None:
        if gt is None:
            raise ValueError("evaluating pseudo-labels needs gt (a folder of true masks)")
        labelled = evaluate_labels_task(workdir, gt, run_id, dataset, out, params_dict)
        report_paths = [labelled["report"]]
        method = method or f"pseudo-labels {labelled['run_id']}"
        extra.update(labelling_run=labelled["run_id"], workdir=workdir,
                     non_ok_labels="labels whose status is not 'ok' are scored as empty predictions")
    else:
        raise ValueError("give pred (prediction folders) or workdir (pseudo-labels) to evaluate")
    result = write_outputs_task(report_paths, method, out, json_path, extra)
    _publish(result, method)
    return result


def deployments(project: Path) -> list:
    """``evaluate/default``: the pseudo-labels of ``data/`` against the sample set's true masks."""
    return [
        evaluate.to_deployment(
            name="default",
            parameters={
                "workdir": str(project / "data"),
                "gt": str(project / "data" / "raw" / "sample" / "masks"),
                "out": str(project / "data" / "reports" / "pseudo_labels"),
                "params_file": str(project / "params.yaml"),
            },
            tags=["sodforge"],
            description="Score saliency maps or pseudo-labels against ground truth (MAE, S, wF, F, E) with "
                        "PySODMetrics; writes metrics.json, tables, PR curves and overlays.",
        )
    ]


if __name__ == "__main__":
    print(evaluate(workdir="data", gt="data/raw/sample/masks", out="data/reports/pseudo_labels"))
