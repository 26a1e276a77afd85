"""Tasks of the refinement flows: plan, train the cue extractor, train the detector with SPR, write
refined shards, adapter-tune. Every task takes and returns paths (never arrays or models).
"""

from __future__ import annotations

import time
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.params import load_section
from engine.refine.params import RefineParams


def refine_params(values: dict[str, Any]) -> RefineParams:
    """A validated :class:`RefineParams` from a plain (JSON-able) dict."""
    return load_section(None, "refine", RefineParams, overrides=values)


@task(name="plan-refine", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE, tags=["io"])
def plan_refine_task(workdir: str, params: dict[str, Any]) -> str:
    """Plan a refinement run over ``workdir``; returns its run directory."""
    from engine.refine.plan import plan_refine_run

    plan = plan_refine_run(workdir, refine_params(params))
    get_run_logger().info("refinement run %s of %s: %d images", plan.run_id, plan.source_run, plan.count)
    return plan.run_dir


@task(name="train-cue-extractor", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["gpu"])
def train_cue_extractor_task(run_dir: str) -> str:
    """Stage 1 (SCE with PCL-SD) and the cue labels; returns the cue bank path."""
    from engine.refine.stages import run_cue_stage

    started = time.perf_counter()
    path = run_cue_stage(run_dir, log=get_run_logger().info)
    get_run_logger().info("cue extractor done in %.1f s", time.perf_counter() - started)
    return str(path)


@task(name="train-detector-spr", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["gpu"])
def train_detector_task(run_dir: str) -> str:
    """Stage 2 (two-stream detector, SPR on the label bank); returns the refined label bank path."""
    from engine.refine.stages import run_detector_stage

    started = time.perf_counter()
    path = run_detector_stage(run_dir, log=get_run_logger().info)
    get_run_logger().info("detector with SPR done in %.1f s", time.perf_counter() - started)
    return str(path)


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

    return adapter_tune(detector, target, out_dir, refine_params(params), log=get_run_logger().info)
