"""Tasks of the labelling flow: ingest, label one shard, build the catalog."""

from __future__ import annotations

import os
import time
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.catalog import build_catalog
from engine.images.io import MAX_PIXELS
from engine.images.manifest import ingest
from engine.labeling import Labeler, label_shard, load_label_models
from engine.labeling.shard import shard_fingerprint
from engine.params import LabelParams, ModelsParams
from engine.storage import shard_is_current, write_text_atomic

SHOWN_SKIPPED = 20  # skipped files listed in the log (all of them go to the report file)


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O hiccups, never bad input: a ValueError names a problem that retrying cannot fix."""
    try:
        state.result()
    except ValueError:
        return False
    except BaseException:  # noqa: BLE001 - anything else may be transient
        return True
    return True


@task(name="ingest-images", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_unless_bad_input,
      cache_policy=NO_CACHE, tags=["io"])
def ingest_images(images: str, manifest_dir: str, shard_size: int, max_pixels: int = MAX_PIXELS,
                  skipped_report: str | None = None) -> dict[str, Any]:
    """Scan ``images`` into manifest shards; returns ``{"shards": paths, "unreadable": n, "skipped": [...]}``.

    Files passed over (not images, FIFOs, symlink loops...) are logged as one warning listing them
    (the first few; all of them in ``skipped_report`` when given).
    """
    result = ingest(images, manifest_dir, shard_size, max_pixels)
    logger = get_run_logger()
    logger.info(
        "ingest: %d images (%d new, %d duplicate files, %d unreadable) in %d shards, %d rewritten",
        result.images, result.new_images, result.duplicates, result.unreadable, len(result.shard_paths),
        result.rewritten_shards,
    )
    skipped = [{"path": s.path, "reason": s.reason} for s in result.skipped]
    if skipped_report:
        write_text_atomic("".join(f"{s['path']}\t{s['reason']}\n" for s in skipped), skipped_report)
    if skipped:
        listed = "\n".join(f"  {s['path']}: {s['reason']}" for s in skipped[:SHOWN_SKIPPED])
        more = f"\n  ... and {len(skipped) - SHOWN_SKIPPED} more" if len(skipped) > SHOWN_SKIPPED else ""
        where = f" (all listed in {skipped_report})" if skipped_report else ""
        logger.warning("ingest: skipped %d files that are not images%s:\n%s%s", len(skipped), where, listed, more)
    return {"shards": [str(p) for p in result.shard_paths], "unreadable": result.unreadable, "skipped": skipped}


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
    if shard_fingerprint(manifest_path, label_models.identity, labeler.params) != fingerprint:
        raise RuntimeError(
            f"{shard}: this worker would label run {run_id} differently than planned (its models, device type, "
            f"precision or library versions differ: {label_models.identity}); set models.device / models.precision "
            "explicitly and use the same software on every worker"
        )
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
