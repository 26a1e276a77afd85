"""Flow ``train-sod``: (true masks ->) label shards -> DEDecoder model -> held-out predictions.

Run in-process with ``sodforge train LABELS --out DIR``, or as the deployment ``train-sod/default``
once ``sodforge serve`` is running. Interrupted runs resume after the last finished epoch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from engine.sod.params import load_train_params
from tasks.train import import_gt_masks_task, predict_task, train_sod_task


@flow(name="train-sod", log_prints=True)
def train_sod_flow(
    labels: str = "data/gt-labels/sample",
    out_dir: str = "data/models/sod",
    import_masks_from: str | None = None,
    predict_dir: str | None = None,
    masks_dir: str | None = None,
    params_file: str | None = "params.yaml",
    backbone: str | None = None,
    checkpoint: str | None = None,
    epochs: int | None = None,
    run_id: str | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    preset: str | None = None,
) -> dict[str, Any]:
    """Train a saliency model on label shards and (optionally) predict the held-out split.

    Args:
        labels: folder of label shards (a run folder, or ``run=<id>/`` folders; newest or ``run_id``).
        out_dir: model folder (``model.pt``, ``metrics.json``, ``history.json``, ``checkpoints/``).
        import_masks_from: an image set with true masks (``masks/``); imported into ``labels`` first.
        predict_dir: where to write saliency PNGs of the held-out images (skipped when empty).
        masks_dir: where to write the held-out images' label masks (pairs with predict_dir for evaluate).
        params_file: parameters file (section ``train``); missing means built-in defaults.
        backbone, checkpoint, epochs, run_id: override the ``train`` section (backbone: tiny, resnet50,
            swin_t, pvt_v2_b2, convnext_t, or a test-sized tiny_swin / tiny_pvt_v2 / tiny_convnext).
        overrides: any other ``train`` keys, e.g. ``{"lr": 0.001, "upsample": "bilinear"}``.
        preset: named settings from ``train_presets`` in the parameters file (``cpu-real``, ``gpu-real``),
            applied over the ``train`` section and under ``overrides``.
    """
    path = Path(params_file) if params_file and Path(params_file).is_file() else None
    chosen = {"labels": labels, "backbone": backbone, "checkpoint": checkpoint, "epochs": epochs, "run_id": run_id}
    params = load_train_params(path, {**(overrides or {}), **chosen}, preset)
    if import_masks_from:  # train on exactly the run just imported, whatever else lies in ``labels``
        run_dir = import_gt_masks_task(import_masks_from, labels)
        params = dataclasses.replace(params, labels=run_dir, run_id=None)
    summary = train_sod_task(out_dir, dataclasses.asdict(params), progress)
    if predict_dir:
        summary["predictions"] = predict_task(
            summary["model"], predict_dir, labels=params.labels, split="val", val_fraction=params.val_fraction,
            seed=params.seed, run_id=params.run_id, masks_out=masks_dir,
        )
    get_run_logger().info("train-sod: %s", summary)
    rows = [{"measure": k, "value": str(v)} for k, v in summary.items()]
    create_table_artifact(rows, key="train-sod", description=f"SOD model in {out_dir}")
    return summary


def deployments(project: Path) -> list:
    """``train-sod/default``: train on the sample set's true masks, predict its held-out images."""
    return [
        train_sod_flow.to_deployment(
            name="default",
            parameters={
                "labels": str(project / "data" / "gt-labels" / "sample"),
                "out_dir": str(project / "data" / "models" / "sod"),
                "import_masks_from": str(project / "data" / "raw" / "sample"),
                "predict_dir": str(project / "data" / "predictions" / "sod-sample" / "pred"),
                "masks_dir": str(project / "data" / "predictions" / "sod-sample" / "gt"),
                "params_file": str(project / "params.yaml"),
                "progress": False,
            },
            tags=["sodforge", "gpu"],
            description="Train the DEDecoder saliency model on label shards (resumes after interruption).",
        ),
    ]


if __name__ == "__main__":
    print(train_sod_flow())
