"""Flow ``refine-labels``: labels -> SCE cues (PCL-SD) -> detector with SPR -> held-out check -> refined shards.

The source is a workdir's labelling run (``sodforge refine --workdir DIR``) or any folder of label
shards (``sodforge refine --labels DIR --out OUT``). The refined labels are a NEW labelled version
(``catalog/labels_refined/run=refine-<id>/`` or ``OUT/run=refine-<id>/``); the source is never touched.

Refinement never makes labels silently worse (DESIGN.md contract 10): the run checks itself on
held-out images (:mod:`engine.refine.gate`) and writes refined masks only when that check passed;
otherwise the new version holds the source masks unchanged. Either way the summary (``decision``,
``labels_verified``, ``reason``, the probe's figures), the log and the ``refined-label-run`` artifact
say which, and why. Run in-process with ``sodforge refine``, or as the deployment
``refine-labels/default`` once ``sodforge serve`` is running.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner

from engine.catalog import RunRecord, Workdir
from engine.catalog.runs import utc_now
from engine.params import load_section
from engine.refine.params import RefineParams
from engine.refine.plan import load_plan
from engine.refine.stages import summarize_run
from tasks.refine import (
    check_refinement_task,
    plan_refine_task,
    train_cue_extractor_task,
    train_detector_task,
    write_refined_shard_task,
)


def map_shards(shard_task, run_dir: str, shards: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    """Run ``shard_task(run_dir, shard)`` for every shard: submitted inside a flow run, called in
    order outside one (``refine_labels.fn`` in tests)."""
    if FlowRunContext.get() is None:
        return [shard_task(run_dir, shard) for shard in shards]
    futures = [shard_task.submit(run_dir, shard) for shard in shards]
    return [future.result() for future in futures]


def resolve_refine_params(params_file: str | None, overrides: dict[str, Any] | None) -> RefineParams:
    """The ``refine`` section of ``params_file`` (when it exists) with ``overrides`` applied."""
    path = Path(params_file) if params_file else None
    return load_section(path if path and path.is_file() else None, "refine", RefineParams, overrides=overrides)


def describe_settings(params: RefineParams, params_file: str | None) -> list[str]:
    """What this run will do, in a line, plus a warning when the configuration cannot refine well."""
    source = params_file if params_file and Path(params_file).is_file() else "built-in defaults (no params.yaml)"
    weights = params.checkpoint or "random init"
    lines = [f"refine settings from {source}: backbone {params.backbone} ({weights}), {params.size} px, "
             f"cue extractor {params.sce.epochs} epochs, detector {params.detector.epochs} epochs, device {params.device}"]
    if params.checkpoint is None and params.backbone != "tiny":
        lines.append(f"warning: refine.backbone {params.backbone} has no checkpoint (random weights): slow on a CPU, and "
                     "without pretrained features the self-check will most likely keep the source labels; set "
                     "refine.checkpoint (e.g. MoCo-v2 ResNet-50) or try --backbone tiny --size 64 first")
    return lines


@flow(name="refine-labels", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def refine_labels(
    workdir: str = "data",
    source_run: str | None = None,
    params_file: str | None = "params.yaml",
    overrides: dict[str, Any] | None = None,
    build_catalog: bool = True,
    record_run: bool = True,
    labels: str | None = None,
    out: str | None = None,
) -> dict[str, Any]:
    """Refine labels without supervision and write them as a new version, never silently worse.

    Args:
        workdir: the working directory of a ``build-pseudo-labels`` run (ignored with ``labels``).
        source_run: labelling run to refine (default: the newest completed one; with ``labels``, the
            ``run=<id>`` folder to use when there are several).
        params_file: parameters file (``refine`` section); missing means built-in defaults.
        overrides: ``refine`` keys to override, e.g. ``{"backbone": "tiny", "sce": {"epochs": 2}}``.
        build_catalog: rebuild ``workdir/catalog.duckdb`` afterwards (workdir runs only).
        record_run: add the run to ``catalog/runs`` (workdir runs only; off under DVC).
        labels: any folder of label shards (``*.parquet`` or ``run=<id>/*.parquet``) instead of a workdir.
        out: where refined shards go with ``labels`` (``OUT/run=refine-<id>/``; run files in ``OUT/refine/``).

    Returns:
        The run summary: counts, ``decision`` (``refined`` | ``kept_source`` | ``unverified``),
        ``labels_verified``, ``reason``, ``probe`` figures, ``labels_dir``, ``source_dir``.
    """
    started = time.perf_counter()
    if (labels is None) != (out is None):
        raise ValueError("refine-labels: give both labels and out (a label folder and where to write), or neither")
    merged = {**(overrides or {}), **({"source_run": source_run} if source_run else {})}
    params = resolve_refine_params(params_file, merged)
    settings, *warnings = describe_settings(params, params_file)
    print(settings)  # log_prints: the run's log inside a flow run, the terminal outside
    for line in warnings:
        get_run_logger().warning(line) if FlowRunContext.get() else print(line)
    wd = Workdir.at(workdir) if labels is None else None
    run_dir = plan_refine_task(str(wd.root) if wd else None, dataclasses.asdict(params), labels=labels, out=out)
    plan = load_plan(run_dir)
    record = RunRecord(plan.run_id, "refine-labels", {"backbone": params.backbone, "checkpoint": str(params.checkpoint)},
                       {"refine": dataclasses.asdict(params), "source_run": plan.source_run})
    record_run = record_run and wd is not None
    if record_run:
        record.save(wd)
    train_cue_extractor_task(run_dir)
    train_detector_task(run_dir)
    check_refinement_task(run_dir)
    written = map_shards(write_refined_shard_task, run_dir, plan.source_shards)
    summary = {**summarize_run(run_dir), "seconds": round(time.perf_counter() - started, 2)}
    if record_run:
        record.state, record.finished_at, record.seconds = "completed", utc_now(), summary["seconds"]
        record.shards, record.images = len(written), summary["images"]
        record.ok, record.no_object, record.error = summary["ok"], summary["no_object"], summary["error"]
        record.save(wd)
    if build_catalog and wd is not None:
        from tasks.labeling import build_catalog_task

        summary["catalog"] = build_catalog_task(str(wd.root))
    report_decision(summary)
    return summary


def decision_message(summary: dict[str, Any]) -> str:
    """One line for people: which labels the new version holds, and why."""
    if summary["decision"] == "refined":
        return f"refined labels verified and written to {summary['labels_dir']}: {summary['reason']}"
    if summary["decision"] == "unverified":
        return f"refined labels written to {summary['labels_dir']} WITHOUT a check: {summary['reason']}"
    return f"SOURCE LABELS KEPT (copied to {summary['labels_dir']}): {summary['reason'].removeprefix('source labels kept: ')}"


def report_decision(summary: dict[str, Any]) -> None:
    """Log the decision (warning when the source was kept) and, inside a flow run, publish the artifact."""
    from tasks.logs import task_logger

    logger = task_logger()
    message = decision_message(summary)
    (logger.info if summary["decision"] == "refined" else logger.warning)(message)
    if FlowRunContext.get() is None:
        return
    rows = [{"measure": "decision", "value": message}]
    rows += [{"measure": k, "value": json.dumps(v) if isinstance(v, dict) else str(v)}
             for k, v in summary.items() if k != "reason"]
    create_table_artifact(rows, key="refined-label-run", description=f"Refinement run {summary['run_id']}: {message}")


def deployments(project: Path) -> list:
    """``refine-labels/default`` on the project's ``data/`` workdir and ``params.yaml``."""
    return [
        refine_labels.to_deployment(
            name="default",
            parameters={"workdir": str(project / "data"), "params_file": str(project / "params.yaml")},
            tags=["sodforge"],
            description="Refine pseudo-labels without supervision (PCL-SD cues + SPR) into a new labelled version.",
        )
    ]


if __name__ == "__main__":
    print(refine_labels())
