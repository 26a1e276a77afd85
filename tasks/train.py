"""Tasks of the ``train-sod`` flow: import true masks as labels, train, predict. Paths in, paths out."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.logs import task_logger


@task(name="import-gt-masks", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE, tags=["io"])
def import_gt_masks_task(images: str, out_dir: str, masks: str | None = None, shard_size: int = 512) -> str:
    """Write the true masks beside ``images`` as label shards under ``out_dir``; returns the run folder."""
    from engine.sod.gt_import import import_mask_folder

    result = import_mask_folder(images, out_dir, masks, shard_size)
    task_logger().info("imported true masks as run %s: %s", result.run_id, result.counts)
    return str(result.run_dir)


@task(name="train-sod-model", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["gpu"],
      timeout_seconds=None)
def train_sod_task(out_dir: str, train: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Train (or resume: a retry continues after the last finished epoch) into ``out_dir``."""
    from engine.sod.params import TrainParams
    from engine.sod.trainer import train_sod

    logger = task_logger()
    result = train_sod(out_dir, TrainParams(**train), progress=progress, log=logger.info)
    last = result.history[-1] if result.history else {}
    return {
        "model": str(result.model_path), "out_dir": str(result.out_dir), "epochs_run": result.epochs_run,
        "resumed_from": result.resumed_from, "seconds": round(result.seconds, 2),
        "val_mae": last.get("val_mae"), "train_loss": last.get("train_loss"),
    }


@task(name="predict-saliency", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE, tags=["gpu"])
def predict_task(model: str, out_dir: str, images: str | None = None, labels: str | None = None,
                 split: str = "val", val_fraction: float = 0.25, seed: int = 0, run_id: str | None = None,
                 batch_size: int = 8, masks_out: str | None = None) -> dict[str, Any]:
    """Write saliency PNGs for a folder of images or one split of a label run; returns counts.

    With ``labels`` and ``masks_out``, the split's label masks are written too (the ``--gt`` of evaluate).
    """
    from engine.sod.predict import predict, write_split_masks

    result = predict(model, out_dir, images=images, labels=labels, split=split, val_fraction=val_fraction,
                     seed=seed, run_id=run_id, batch_size=batch_size)
    for error in result.errors:
        task_logger().warning("predict: %s", error)
    summary = {"out_dir": str(result.out_dir), "written": result.written, "errors": len(result.errors)}
    if labels is not None and masks_out is not None:
        summary["masks"] = write_split_masks(labels, masks_out, split, val_fraction, seed, run_id)
    return summary
