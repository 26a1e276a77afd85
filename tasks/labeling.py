"""Tasks of the labelling flow: ingest, label one shard, build the catalog."""

from __future__ import annotations

import os
import time
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.catalog import build_catalog
from engine.images.manifest import ingest
from engine.labeling import Labeler, label_shard, load_label_models
from engine.params import LabelParams, ModelsParams
from engine.storage import shard_is_current


@task(name="ingest-images", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE, tags=["io"])
def ingest_images(images: str, manifest_dir: str, shard_size: int) -> list[str]:
    """Scan ``images`` into manifest shards; returns the manifest shard paths."""
    result = ingest(images, manifest_dir, shard_size)
    get_run_logger().info(
        "ingest: %d images (%d new, %d duplicate files) in %d shards, %d rewritten",
        result.images, result.new_images, result.duplicates, len(result.shard_paths), result.rewritten_shards,
    )
    return [str(p) for p in result.shard_paths]


def _label_cache_key(context: Any, parameters: dict[str, Any]) -> str | None:
    """Cache on the shard fingerprint, but only while its output file is really there and current."""
    if shard_is_current(parameters["out_path"], parameters["fingerprint"]):
        return f"label-shard-{parameters['fingerprint']}"
    return None


@task(
    name="label-shard",
    retries=2,
    retry_delay_seconds=5,
    cache_key_fn=_label_cache_key,
    persist_result=True,
    tags=["gpu"],
    task_run_name="label-{shard}",
)
def label_shard_task(
    shard: str, manifest_path: str, out_path: str, fingerprint: str, run_id: str, label: dict, models: dict
) -> dict[str, Any]:
    """Label one manifest shard into ``out_path``; returns counts (the shard is skipped if current)."""
    started = time.perf_counter()
    label_models = load_label_models(ModelsParams(**models))
    labeler = Labeler(label_models, LabelParams(**label), run_id)
    result = label_shard(manifest_path, out_path, labeler)
    if not result.skipped and not shard_is_current(out_path, fingerprint):
        raise RuntimeError(f"{out_path}: written shard does not carry the expected fingerprint {fingerprint}")
    seconds = time.perf_counter() - started
    get_run_logger().info(
        "%s: %s %s in %.1f s", shard, "skipped (current)" if result.skipped else "labelled",
        result.counts, seconds,
    )
    return {"path": str(result.path), "skipped": result.skipped, "counts": result.counts, "seconds": seconds,
            "worker": worker_label(label_models.runtime)}


def worker_label(runtime: Any) -> str:
    """Which process and device labelled a shard: ``pid 123 cuda:0 (CUDA_VISIBLE_DEVICES=2)``."""
    pinned = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = f" (CUDA_VISIBLE_DEVICES={pinned})" if pinned is not None else ""
    return f"pid {os.getpid()} {getattr(runtime, 'device', 'unknown')}{where}"


@task(name="build-catalog", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE, tags=["io"])
def build_catalog_task(workdir: str) -> str:
    """Rewrite ``workdir/catalog.duckdb`` (views only) and return its path."""
    return str(build_catalog(workdir))
