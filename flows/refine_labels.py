"""Flow ``refine-labels``: a labelling run -> SCE cues (PCL-SD) -> detector with SPR -> refined shards.

The refined labels are a NEW labelled version (``catalog/labels_refined/run=refine-<id>/``); the
source run is never touched. Run in-process with ``sodforge refine --workdir DIR``, or as the
deployment ``refine-labels/default`` once ``sodforge serve`` is running.
"""

from __future__ import annotations

import dataclasses
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


@flow(name="refine-labels", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def refine_labels(
    workdir: str = "data",
    source_run: str | None = None,
    params_file: str | None = "params.yaml",
    overrides: dict[str, Any] | None = None,
    build_catalog: bool = True,
    record_run: bool = True,
) -> dict[str, Any]:
    """Refine a labelling run of ``workdir`` without supervision and write it as a new version.

    Args:
        workdir: the working directory of a ``build-pseudo-labels`` run.
        source_run: labelling run to refine (default: the newest completed one).
        params_file: parameters file (``refine`` section); missing means built-in defaults.
        overrides: ``refine`` keys to override, e.g. ``{"backbone": "tiny", "sce": {"epochs": 2}}``.
        build_catalog: rebuild ``workdir/catalog.duckdb`` afterwards.
        record_run: add the run to ``catalog/runs`` (off under DVC, where another stage owns that folder).
    """
    started = time.perf_counter()
    merged = {**(overrides or {}), **({"source_run": source_run} if source_run else {})}
    params = resolve_refine_params(params_file, merged)
    wd = Workdir.at(workdir)
    run_dir = plan_refine_task(str(wd.root), dataclasses.asdict(params))
    plan = load_plan(run_dir)
    record = RunRecord(plan.run_id, "refine-labels", {"backbone": params.backbone, "checkpoint": str(params.checkpoint)},
                       {"refine": dataclasses.asdict(params), "source_run": plan.source_run})
    if record_run:
        record.save(wd)
    train_cue_extractor_task(run_dir)
    train_detector_task(run_dir)
    written = map_shards(write_refined_shard_task, run_dir, plan.source_shards)
    summary = {**summarize_run(run_dir), "seconds": round(time.perf_counter() - started, 2)}
    if record_run:
        record.state, record.finished_at, record.seconds = "completed", utc_now(), summary["seconds"]
        record.shards, record.images = len(written), summary["images"]
        record.ok, record.no_object, record.error = summary["ok"], summary["no_object"], summary["error"]
        record.save(wd)
    if build_catalog:
        from tasks.labeling import build_catalog_task

        summary["catalog"] = build_catalog_task(str(wd.root))
    if FlowRunContext.get() is not None:
        get_run_logger().info("refined labels: %s", summary)
        create_table_artifact([{"measure": k, "value": str(v)} for k, v in summary.items()],
                              key="refined-label-run", description=f"Refinement run {plan.run_id}")
    return summary


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
