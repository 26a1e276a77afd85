"""Tasks of the refinement flows: plan, train the cue extractor, train the detector with SPR, check
it on held-out images, write refined shards, adapter-tune. Every task takes and returns paths (never
arrays or models).
"""

from __future__ import annotations

import time
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from engine.params import load_section
from engine.refine.params import RefineParams
from tasks.logs import task_logger


def refine_params(values: dict[str, Any]) -> RefineParams:
    """A validated :class:`RefineParams` from a plain (JSON-able) dict."""
    return load_section(None, "refine", RefineParams, overrides=values)


@task(name="plan-refine", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE, tags=["io"])
def plan_refine_task(workdir: str | None, params: dict[str, Any], labels: str | None = None,
                     out: str | None = None) -> str:
    """Plan a refinement run of ``workdir``'s labelling run, or of the label folder ``labels`` into
    ``out``; returns its run directory."""
    from engine.refine.plan import plan_label_folder_run, plan_refine_run

    settings = refine_params(params)
    plan = plan_label_folder_run(labels, out, settings) if labels is not None else plan_refine_run(workdir, settings)
    task_logger().info("refinement run %s of %s: %d images (%d skipped)", plan.run_id, plan.source_run, plan.count,
                    len(plan.skipped))
    return plan.run_dir


@task(name="train-cue-extractor", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["gpu"])
def train_cue_extractor_task(run_dir: str) -> str:
    """Stage 1 (SCE with PCL-SD) and the cue labels; returns the cue bank path."""
    from engine.refine.stages import run_cue_stage

    started = time.perf_counter()
    path = run_cue_stage(run_dir, log=task_logger().info)
    task_logger().info("cue extractor done in %.1f s", time.perf_counter() - started)
    return str(path)


@task(name="train-detector-spr", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["gpu"])
def train_detector_task(run_dir: str) -> str:
    """Stage 2 (two-stream detector, SPR on the label bank); returns the refined label bank path."""
    from engine.refine.stages import run_detector_stage

    started = time.perf_counter()
    path = run_detector_stage(run_dir, log=task_logger().info)
    task_logger().info("detector with SPR done in %.1f s", time.perf_counter() - started)
    return str(path)


@task(name="check-refinement", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["gpu"])
def check_refinement_task(run_dir: str) -> dict[str, Any]:
    """Stage 3: the held-out self-check (probe + decision); returns ``gate.json``'s content."""
    from engine.refine.stages import run_gate_stage

    started = time.perf_counter()
    gate = run_gate_stage(run_dir, log=task_logger().info)
    task_logger().info("refinement check done in %.1f s", time.perf_counter() - started)
    return gate


@task(name="write-refined-shard", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE, tags=["io"],
      task_run_name="refined-{source_shard}")
def write_refined_shard_task(run_dir: str, source_shard: str) -> dict[str, Any]:
    """One source label shard -> one refined shard (skipped when current); returns path and counts."""
    from engine.refine.stages import write_refined_shard

    return write_refined_shard(run_dir, source_shard)


@task(name="adapter-tune", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["gpu"])
def adapter_tune_task(detector: str, target: str, out_dir: str, params: dict[str, Any]) -> dict[str, Any]:
    """Freeze ``detector``, train adapters on the images of ``target``; returns the summary."""
    from engine.refine.transfer import adapter_tune

    return adapter_tune(detector, target, out_dir, refine_params(params), log=task_logger().info)
