"""Training: the loss goes down, checkpoints resume, predictions land as PNGs; tasks and the flow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.sod import ModelConfig, SODLoss, SODNet
from engine.sod.gt_import import import_mask_folder
from engine.sod.params import TrainParams, load_train_params
from engine.sod.predict import predict, write_split_masks
from engine.sod.trainer import resolve_precision, train_sod


@pytest.fixture(scope="module")
def gt_run(sample_set: Path, tmp_path_factory) -> Path:
    return import_mask_folder(sample_set, tmp_path_factory.mktemp("gt")).run_dir


def _params(labels: Path, **changes) -> TrainParams:
    base = {"labels": str(labels), "size_hw": (64, 64), "batch_size": 4, "epochs": 2, "width": 8, "lr": 0.01,
            "val_fraction": 0.34}
    return TrainParams(**{**base, **changes})


def test_a_few_steps_decrease_the_loss():
    torch.manual_seed(0)
    model = SODNet(ModelConfig(backbone="tiny", width=8, size_hw=(32, 32)))
    images = torch.rand(4, 3, 32, 32)
    masks = torch.zeros(4, 1, 32, 32)
    masks[..., 8:24, 8:24] = 1.0
    images[..., 8:24, 8:24] = images[..., 8:24, 8:24] * 0.2 + 0.8  # a bright salient square
    loss_fn, optimizer = SODLoss(), torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        total, _ = loss_fn(*_outputs(model, images, masks))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert losses[-1] < 0.8 * losses[0]


def _outputs(model, images, masks):
    out = model(images)
    return out.logits, masks, out.edge_logits


class Interrupt(Exception):
    pass


def _interrupt_after_epoch_1(message: str) -> None:
    if message.startswith("epoch 1/"):
        raise Interrupt(message)


def test_interrupted_training_resumes_after_the_last_finished_epoch(gt_run, tmp_path):
    params = _params(gt_run, epochs=3)
    with pytest.raises(Interrupt):
        train_sod(tmp_path, params, progress=False, log=_interrupt_after_epoch_1)
    assert json.loads((tmp_path / "checkpoints" / "last.json").read_text())["epoch"] == 1
    assert not (tmp_path / "model.pt").exists()
    first_epoch = json.loads((tmp_path / "history.json").read_text())[0]

    result = train_sod(tmp_path, params, progress=False, log=lambda _: None)
    assert (result.resumed_from, result.epochs_run) == (1, 2)
    assert [r["epoch"] for r in result.history] == [1, 2, 3] and result.history[0] == first_epoch
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epoch"] == 3 and 0.0 <= metrics["val_mae"] <= 1.0 and metrics["val_images"] > 0
    assert (tmp_path / "model.pt").is_file()

    again = train_sod(tmp_path, params, progress=False, log=lambda _: None)
    assert (again.resumed_from, again.epochs_run) == (3, 0)
    changed = train_sod(tmp_path, _params(gt_run, epochs=1, lr=0.02), progress=False, log=lambda _: None)
    assert changed.resumed_from == 0  # other parameters: the old checkpoint is not reused


def test_predictions_are_pngs_at_original_size_with_the_same_stems(gt_run, sample_set, tmp_path):
    params = _params(gt_run, epochs=1)
    model_path = train_sod(tmp_path / "model", params, progress=False, log=lambda _: None).model_path
    result = predict(model_path, tmp_path / "pred", labels=gt_run, split="val", val_fraction=0.34, device="cpu")
    assert write_split_masks(gt_run, tmp_path / "gt", "val", 0.34) == result.written > 0
    preds, gts = sorted((tmp_path / "pred").glob("*.png")), sorted((tmp_path / "gt").glob("*.png"))
    assert [p.name for p in preds] == [p.name for p in gts]
    array = np.asarray(Image.open(preds[0]))
    assert array.dtype == np.uint8 and array.shape == (96, 128)
    truth = np.asarray(Image.open(sample_set / "masks" / gts[0].name))
    assert np.array_equal(np.asarray(Image.open(gts[0])) > 127, truth > 127)
    folder = predict(model_path, tmp_path / "all", images=sample_set, device="cpu")
    assert folder.written == 12 and not folder.errors


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"size_hw": [100, 128]}, "multiples of 32"), ({"upsample": "nearest"}, "upsample.*must be one of"),
     ({"width": 10}, "divisible by groups"), ({"nope": 1}, "unknown keys")],
)
def test_bad_train_params_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_train_params(None, overrides)


@pytest.mark.parametrize(("precision", "accelerator", "native_bf16", "expected"),
                         [("auto", "cpu", True, "32-true"), ("16-mixed", "cuda", False, "16-mixed"),
                          ("bf16-if-native", "cpu", True, "bf16-mixed"), ("bf16-if-native", "cpu", False, "32-true")])
def test_precision_resolution(monkeypatch, precision, accelerator, native_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert resolve_precision(precision, accelerator) == expected


def test_tasks_run_as_plain_functions(sample_set, tmp_path):
    from tasks.train import import_gt_masks_task, predict_task, train_sod_task

    run_dir = import_gt_masks_task.fn(str(sample_set), str(tmp_path / "labels"))
    import dataclasses

    summary = train_sod_task.fn(str(tmp_path / "model"), dataclasses.asdict(_params(Path(run_dir), epochs=1)), False)
    assert summary["epochs_run"] == 1 and Path(summary["model"]).is_file()
    written = predict_task.fn(summary["model"], str(tmp_path / "pred"), images=str(sample_set))
    assert written == {"out_dir": str(tmp_path / "pred"), "written": 12, "errors": 0}


def test_train_sod_flow_through_prefect(prefect_harness, sample_set, tmp_path):
    from flows.train_sod import train_sod_flow

    summary = train_sod_flow(
        labels=str(tmp_path / "labels"), out_dir=str(tmp_path / "model"), import_masks_from=str(sample_set),
        predict_dir=str(tmp_path / "pred"), masks_dir=str(tmp_path / "gt"), params_file=None, epochs=1, progress=False,
        overrides={"size_hw": [64, 64], "width": 8, "batch_size": 4, "val_fraction": 0.25}, preset="cpu-real",
    )
    assert summary["epochs_run"] == 1 and summary["predictions"]["written"] > 0
    saved = json.loads((tmp_path / "model" / "params.json").read_text())["train"]
    assert saved["backbone"] == "cpu_small" and saved["width"] == 8  # the preset, under the explicit overrides
    assert len(list((tmp_path / "pred").glob("*.png"))) == summary["predictions"]["written"]
    assert sorted(p.name for p in (tmp_path / "gt").glob("*.png")) == sorted(p.name for p in (tmp_path / "pred").glob("*.png"))


@pytest.mark.parametrize(("step", "schedule", "expected"),
                         [(0, "cosine", 0.25), (3, "cosine", 1.0), (4, "cosine", 1.0), (9, "cosine", 0.5),
                          (14, "cosine", 0.0), (1, "constant", 0.5), (10, "constant", 1.0)])
def test_linear_warmup_then_schedule(step, schedule, expected):
    from engine.sod.trainer import lr_factor

    assert lr_factor(step, total=14, warmup=4, schedule=schedule) == pytest.approx(expected)


def test_presets_apply_over_the_train_section_and_under_overrides(tmp_path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("train:\n  width: 16\n  epochs: 3\ntrain_presets:\n  mine:\n    width: 32\n    lr: 0.002\n")
    params = load_train_params(params_file, {"lr": 0.005}, preset="mine")
    assert (params.width, params.epochs, params.lr) == (32, 3, 0.005)
    with pytest.raises(ValueError, match=r"unknown train preset 'nope'; known: \['mine'\]"):
        load_train_params(params_file, preset="nope")
    # a file without presets falls back to the project's params.yaml, which ships cpu-real and gpu-real
    bare = tmp_path / "bare.yaml"
    bare.write_text("train:\n  epochs: 3\n")
    from engine.sod.params import train_presets

    assert {"cpu-real", "gpu-real"} <= set(train_presets())
    cpu = load_train_params(bare, preset="cpu-real")
    assert cpu.backbone == train_presets()["cpu-real"]["backbone"] and cpu.cache


def test_predict_command_uses_the_split_the_model_was_trained_with(gt_run, tmp_path, monkeypatch):
    from sodforge.commands.train import predict as predict_command

    model_path = train_sod(tmp_path / "model", _params(gt_run, epochs=1, val_fraction=0.5), progress=False,
                           log=lambda _: None).model_path
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("train:\n  val_fraction: 0.25\n")  # not what the model was trained with
    predict_command(model=model_path, out=tmp_path / "pred", images=None, labels=gt_run, split="val", run_id=None,
                    masks_out=tmp_path / "gt", params=None, batch_size=4, device="cpu")
    held_out = write_split_masks(gt_run, tmp_path / "expected", "val", 0.5)
    assert held_out != write_split_masks(gt_run, tmp_path / "other", "val", 0.25)  # the two splits differ here
    assert sorted(p.name for p in (tmp_path / "pred").glob("*.png")) == sorted(
        p.name for p in (tmp_path / "expected").glob("*.png"))
