"""``sodforge train`` (the train-sod flow, in-process), ``sodforge predict`` and ``sodforge import-masks``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sodforge.output import fail, say, say_labelled

ParamsOpt = Annotated[Path | None, typer.Option(help="params.yaml with a 'train' section (default: ./params.yaml if present).")]


_fail = fail


def _params_path(params: Path | None) -> Path | None:
    if params is None and Path("params.yaml").is_file():
        return Path("params.yaml")
    return params


def parse_sets(pairs: list[str]) -> dict:
    """``["lr=0.01", "edge_branch=false"]`` -> ``{"lr": 0.01, "edge_branch": False}`` (values read as YAML)."""
    import yaml

    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        parsed[key.strip()] = yaml.safe_load(value)
    return parsed


def train(
    labels: Annotated[Path | None, typer.Argument(help="Label shards folder (default: params.yaml train.labels).")] = None,
    out: Annotated[Path, typer.Option(help="Model folder: model.pt, metrics.json, history.json, checkpoints/.")] = Path("data/models/sod"),
    params: ParamsOpt = None,
    import_masks_from: Annotated[Path | None, typer.Option(help="Image set with true masks (masks/): import into LABELS first.")] = None,
    predict_dir: Annotated[Path | None, typer.Option(help="Also write saliency PNGs of the held-out images here.")] = None,
    preset: Annotated[str | None, typer.Option(help="Named settings from params.yaml train_presets, e.g. cpu-real "
                                                    "(from scratch on a CPU) or gpu-real (pretrained backbone, 352 px).")] = None,
    backbone: Annotated[str | None, typer.Option(help="tiny | cpu_small | resnet50 | swin_t | pvt_v2_b2 | convnext_t.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Backbone weights: torchvision/MoCo-v2 file or HF folder.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: params.yaml).")] = None,
    run_id: Annotated[str | None, typer.Option(help="Labelling run to train on (default: the newest).")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a train parameter, e.g. --set lr=0.001.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train the DEDecoder saliency model on label shards; rerunning resumes after the last finished epoch."""
    from flows.train_sod import train_sod_flow
    from sodforge.env import quiet_model_libraries

    quiet_model_libraries()
    try:
        overrides = parse_sets(set_ or [])
        if labels is None:
            from engine.sod.params import load_train_params

            labels = Path(load_train_params(_params_path(params), overrides, preset).labels)
        summary = train_sod_flow(
            labels=str(labels), out_dir=str(out), import_masks_from=str(import_masks_from) if import_masks_from else None,
            predict_dir=str(predict_dir) if predict_dir else None,
            params_file=str(p) if (p := _params_path(params)) else None, backbone=backbone,
            checkpoint=str(checkpoint) if checkpoint else None, epochs=epochs, run_id=run_id, overrides=overrides,
            progress=progress, preset=preset,
        )
    except ValueError as err:
        _fail(str(err))
    mae = summary.get("val_mae")
    say(f"model {summary['model']}: {summary['epochs_run']} epochs run (resumed after {summary['resumed_from']}), "
        f"held-out MAE {'-' if mae is None else f'{mae:.4f}'} at training size, {summary['seconds']} s")


def _trained_split(model: Path, settings) -> tuple[float, int]:
    """The held-out split the model was trained with (``params.json`` beside ``model.pt``, written by
    training, so a preset's ``val_fraction`` is honoured), else the one ``params.yaml`` describes."""
    import json

    saved = model.parent / "params.json"
    try:
        train = json.loads(saved.read_text())["train"]
        return float(train["val_fraction"]), int(train["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return settings.val_fraction, settings.seed


def predict(
    model: Annotated[Path, typer.Argument(help="model.pt written by sodforge train.")],
    out: Annotated[Path, typer.Option(help="Folder for <stem>.png saliency maps (0-255, original size).")],
    images: Annotated[Path | None, typer.Option(help="A folder of images (or a set folder with images/).")] = None,
    labels: Annotated[Path | None, typer.Option(help="Label shards: predict one split of their images instead.")] = None,
    split: Annotated[str, typer.Option(help="With --labels: val | train | all (split as in training).")] = "val",
    run_id: Annotated[str | None, typer.Option(help="With --labels: labelling run (default: the newest).")] = None,
    masks_out: Annotated[Path | None, typer.Option(help="With --labels: also write that split's label masks here (for evaluate --gt).")] = None,
    params: ParamsOpt = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 8,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
) -> None:
    """Write saliency maps for a folder of images or the held-out split of a label run."""
    from engine.sod.params import load_train_params
    from engine.sod.predict import predict as run_predict
    from engine.sod.predict import write_split_masks

    if split not in ("val", "train", "all"):
        _fail(f"--split must be val, train or all, got {split!r}")
    try:
        val_fraction, seed = _trained_split(model, load_train_params(_params_path(params)))
        result = run_predict(model, out, images=images, labels=labels, split=split, val_fraction=val_fraction,
                             seed=seed, run_id=run_id, batch_size=batch_size, device=device)
        if masks_out is not None:
            if labels is None:
                _fail("--masks-out needs --labels")
            count = write_split_masks(labels, masks_out, split, val_fraction, seed, run_id)
            say(f"wrote {count} {split} label masks to {masks_out}")
    except ValueError as err:
        _fail(str(err))
    say(f"wrote {result.written} saliency maps to {result.out_dir}")
    for error in result.errors:
        say_labelled("skipped", error, "yellow")


def import_masks(
    images: Annotated[Path, typer.Argument(help="Image folder, or a data set folder: DUTS-TR-Image/ + DUTS-TR-Mask/, "
                                                "images/ + masks/ or gt/ (ECSSD, HKU-IS, PASCAL-S) are found.")],
    out: Annotated[Path, typer.Option(help="Folder for run=gt-<hash>/shard-*.parquet label shards.")],
    masks: Annotated[Path | None, typer.Option(help="Mask folder (default: found beside the images: *-Mask, masks/, gt/ ...).")] = None,
    shard_size: Annotated[int, typer.Option(help="Images per shard.")] = 512,
) -> None:
    """Import true masks (e.g. the sample set's masks/ or DUTS-TR-Mask) as label shards for training/evaluation."""
    from engine.sod.gt_import import import_mask_folder

    try:
        result = import_mask_folder(images, out, masks, shard_size)
    except ValueError as err:
        _fail(str(err))
    say(f"run {result.run_id}: {result.counts} in {len(result.shard_paths)} shards under {result.run_dir}")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("predict")(predict)
    app.command("import-masks")(import_masks)
