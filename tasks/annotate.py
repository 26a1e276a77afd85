"""Tasks of the human-in-the-loop flows: pick images to annotate, collect texts, fine-tune BLIP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from engine.annotations import AnnotationStore, ImageSet, SelectParams, select_round
from engine.annotations.simulated import write_texts_jsonl
from engine.params import load_section
from tasks.logs import task_logger


@task(name="select-for-annotation", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE, tags=["io"])
def select_round_task(images: str, workdir: str, select: dict[str, Any]) -> dict[str, Any]:
    """Write the next annotation round (never an image twice); returns its path and size."""
    image_set = ImageSet.load(images, workdir)
    annotated = {row["image_id"] for row in AnnotationStore(workdir).rows() if row["kind"] in ("text", "skip")}
    path, rows = select_round(workdir, image_set, SelectParams(**select), exclude=annotated)
    task_logger().info("selected %d of %d images (%s)", len(rows), len(image_set), select.get("strategy", "spread"))
    return {"round_path": str(path) if path else None, "selected": len(rows),
            "round": rows[0]["round"] if rows else None, "images": len(image_set)}


@task(name="collect-texts", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE, tags=["io"])
def collect_texts_task(images: str, workdir: str, out: str) -> str:
    """Snapshot the human texts of the annotation store into a JSON-lines file (the training data)."""
    from engine.captioning.data import texts_from_store

    image_set = ImageSet.load(images, workdir)
    examples = texts_from_store(workdir, image_set)
    rows = [{"image": e.image_path, "text": e.text, "annotator": e.annotator} for e in examples]
    task_logger().info("collected %d texts for %d images", len(rows), len({e.group for e in examples}))
    return str(write_texts_jsonl(rows, out))


@task(name="finetune-captioner", retries=1, retry_delay_seconds=10, cache_policy=NO_CACHE, tags=["gpu"])
def finetune_task(texts: str, images_root: str, out_dir: str, finetune: dict[str, Any], base: str) -> dict[str, Any]:
    """Fine-tune BLIP ``base`` on the texts into ``out_dir`` (resumes a killed run); returns the metrics."""
    from engine.captioning.data import load_texts_jsonl
    from engine.captioning.train import FinetuneParams, finetune_captioner

    logger = task_logger()
    examples = load_texts_jsonl(texts, images_root)
    result = finetune_captioner(
        examples, out_dir, FinetuneParams(**finetune), base,
        on_epoch=lambda e, tl, vl: logger.info("epoch %d: train loss %.4f, val loss %.4f", e, tl, vl),
    )
    if result.reused:
        logger.info("%s is current (same texts, base and params): not retrained", out_dir)
    return {**result.metrics(), "reused": result.reused, "resumed_from_epoch": result.resumed_from_epoch,
            "samples_after": result.after.get("samples", []), "out_dir": str(result.out_dir)}


@task(name="write-metrics", cache_policy=NO_CACHE, tags=["io"])
def write_metrics_task(metrics: dict[str, Any], path: str) -> str:
    """Write the DVC metric JSON (atomically)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    tmp.replace(target)
    return str(target)


def load_select_params(params_file: str | None, overrides: dict[str, Any] | None = None) -> SelectParams:
    path = params_file if params_file and Path(params_file).is_file() else None
    return load_section(path, "annotate", SelectParams, overrides)
