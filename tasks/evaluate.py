"""Tasks of the evaluation flow: score one dataset (or one labelling run), then write the outputs.

Tasks take and return paths and plain dicts; a dataset's full result travels as
``OUT/report/datasets/<name>.json``.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from engine.metrics import (
    EvaluateParams,
    evaluate_folder_dataset,
    evaluate_label_run,
    spec_from_dict,
    write_outputs,
)
from engine.metrics.report import load_dataset_report, save_dataset_report
from tasks.logs import task_logger


def _log_gaps(report) -> None:
    logger = task_logger()
    for entry in report.empty_predictions:
        logger.warning("%s/%s scored as an empty map: %s", report.name, entry["stem"], entry["reason"])
    for entry in report.skipped:
        logger.warning("%s/%s skipped: %s", report.name, entry["stem"], entry["reason"])




@task(name="evaluate-dataset", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE, tags=["io"],
      task_run_name="evaluate-{spec[name]}")
def evaluate_dataset_task(spec: dict[str, Any], out_dir: str, params: dict[str, Any]) -> str:
    """Score one benchmark's prediction folder; returns the path of its ``datasets/<name>.json``."""
    report = evaluate_folder_dataset(spec_from_dict(spec), out_dir, EvaluateParams(**params))
    _log_gaps(report)
    return str(save_dataset_report(report, out_dir))


@task(name="evaluate-label-run", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE, tags=["io"])
def evaluate_labels_task(workdir: str, gt: str, run_id: str | None, dataset: str | None, out_dir: str,
                         params: dict[str, Any]) -> dict[str, str]:
    """Score a labelling run's masks against true masks; returns ``{"report": path, "run_id": id}``."""
    report, run = evaluate_label_run(workdir, gt, run_id, dataset, out_dir, EvaluateParams(**params))
    _log_gaps(report)
    return {"report": str(save_dataset_report(report, out_dir)), "run_id": run}


@task(name="write-evaluation", retries=1, retry_delay_seconds=1, cache_policy=NO_CACHE, tags=["io"])
def write_outputs_task(report_paths: list[str], method: str, out_dir: str, json_path: str | None,
                       extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge the datasets' results into the metrics JSON, tables and curve PNGs.

    Returns the written paths plus ``metrics`` as ``{dataset: {MAE, ..., images, ...}}``."""
    from engine.metrics import metrics_block

    reports = [load_dataset_report(p) for p in report_paths]
    written = write_outputs(reports, method, out_dir, json_path, extra)
    return {"paths": written, "metrics": {r.name: metrics_block(r) for r in reports}}
