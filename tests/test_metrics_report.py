"""Evaluation of folders: pairing by stem, gap policies, dataset configs, JSON schema, files, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from engine.metrics import (
    EvaluateParams,
    evaluate_folder_dataset,
    load_dataset_config,
    single_spec,
    with_pred_root,
    write_outputs,
)
from engine.metrics.io import index_by_stem

CONTRACT_KEYS = {"MAE", "Smeasure", "wFmeasure", "adpFm", "meanFm", "maxFm", "adpEm", "meanEm", "maxEm"}


def half_mask(size=(8, 8), top=True) -> np.ndarray:
    mask = np.zeros(size, np.uint8)
    if top:
        mask[: size[0] // 2] = 255
    else:
        mask[size[0] // 2 :] = 255
    return mask


def write_set(root: Path, stems: dict[str, np.ndarray], preds: dict[str, np.ndarray], pred_suffix=".png") -> None:
    (root / "Mask").mkdir(parents=True)
    (root / "Image").mkdir()
    (root / "pred").mkdir()
    for stem, gt in stems.items():
        cv2.imwrite(str(root / "Mask" / f"{stem}.png"), gt)
        cv2.imwrite(str(root / "Image" / f"{stem}.jpg"), np.full((*gt.shape, 3), 90, np.uint8))
    for stem, pred in preds.items():
        cv2.imwrite(str(root / "pred" / f"{stem}{pred_suffix}"), pred)


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """Two images: a: perfect prediction (16x16, resized), b: no prediction file."""
    write_set(tmp_path / "set", {"a": half_mask(), "b": half_mask(top=False)},
              {"a": np.kron(half_mask(), np.ones((2, 2), np.uint8)), "extra": half_mask()})
    return tmp_path / "set"


@pytest.mark.parametrize(
    ("missing", "images", "mae", "empty", "skipped"),
    [("empty", 2, 0.25, 1, 0), ("skip", 1, 0.0, 0, 1)],
)
def test_gap_policies(bench, missing, images, mae, empty, skipped):
    report = evaluate_folder_dataset(single_spec(bench, bench / "pred"), params=EvaluateParams(missing=missing))
    assert report.scores.images == images
    assert report.scores.metrics["MAE"] == pytest.approx(mae)
    assert (len(report.empty_predictions), len(report.skipped)) == (empty, skipped)
    assert report.resized == 1
    assert report.unmatched_predictions == ["extra"]


def test_missing_prediction_is_an_error_naming_it(bench):
    with pytest.raises(ValueError, match=r"1 of 2 .*b \(expected .*pred/b\.\*\)"):
        evaluate_folder_dataset(single_spec(bench, bench / "pred"))


@pytest.mark.parametrize(("missing", "outcome"), [("error", "raises"), ("empty", "empty"), ("skip", "skipped")])
def test_unreadable_prediction(bench, missing, outcome):
    cv2.imwrite(str(bench / "pred" / "b.png"), half_mask(top=False))
    (bench / "pred" / "a.png").write_bytes(b"not a png at all")
    spec = single_spec(bench, bench / "pred")
    if outcome == "raises":
        with pytest.raises(ValueError, match=r"a\.png"):
            evaluate_folder_dataset(spec, params=EvaluateParams(missing=missing))
        return
    report = evaluate_folder_dataset(spec, params=EvaluateParams(missing=missing))
    gaps = report.empty_predictions if outcome == "empty" else report.skipped
    assert len(gaps) == 1 and "a.png" in gaps[0]["reason"]


def test_unreadable_ground_truth_is_skipped_by_name(bench):
    (bench / "Mask" / "b.png").write_bytes(b"")
    report = evaluate_folder_dataset(single_spec(bench, bench / "pred"), params=EvaluateParams(missing="skip"))
    assert report.scores.images == 1
    assert "b.png" in report.skipped[0]["reason"] and "empty" in report.skipped[0]["reason"]


def test_index_by_stem_with_prefix_suffix_and_clashes(tmp_path):
    for name in ("pre_a_mask.png", "pre_b_mask.png", "other.png", "c.png", "c.jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert sorted(index_by_stem(tmp_path, "_mask.png", "pre_")) == ["a", "b"]
    with pytest.raises(ValueError, match="share the stem 'c'"):
        index_by_stem(tmp_path)


def test_dataset_config_like_pysodevaltoolkit(tmp_path):
    write_set(tmp_path / "ECSSD", {"x": half_mask()}, {"x": half_mask()})
    write_set(tmp_path / "HKU", {"y": half_mask()}, {})
    own_preds = tmp_path / "mine" / "HKU"
    own_preds.mkdir(parents=True)
    cv2.imwrite(str(own_preds / "y_sal.png"), 255 - half_mask())
    config = tmp_path / "datasets.json"
    config.write_text(json.dumps({
        "ECSSD": {"image": {"path": "ECSSD/Image", "suffix": ".jpg"}, "mask": {"path": "ECSSD/Mask", "suffix": ".png"}},
        "HKU": {"mask": {"path": str(tmp_path / "HKU" / "Mask"), "prefix": "", "suffix": ".png"},
                "pred": {"path": "mine/HKU", "suffix": "_sal.png"}},
    }))
    specs = [with_pred_root(s, tmp_path / "preds") for s in load_dataset_config(config)]
    assert specs[0].pred.path == tmp_path / "preds" / "ECSSD"
    (tmp_path / "preds").mkdir()
    (tmp_path / "ECSSD" / "pred").rename(tmp_path / "preds" / "ECSSD")
    maes = {s.name: evaluate_folder_dataset(s).scores.metrics["MAE"] for s in specs}
    assert maes == pytest.approx({"ECSSD": 0.0, "HKU": 1.0})


@pytest.mark.parametrize("bad", ["[]", "{}", '{"X": {"image": {"path": "a"}}}', '{"X": {"mask": {"suffix": ".png"}}}', "{"])
def test_bad_dataset_config(tmp_path, bad):
    (tmp_path / "c.json").write_text(bad)
    with pytest.raises(ValueError, match="c.json"):
        load_dataset_config(tmp_path / "c.json")


def test_outputs_schema_and_files(bench, tmp_path):
    out = tmp_path / "out"
    report = evaluate_folder_dataset(single_spec(bench, bench / "pred"), out, EvaluateParams(missing="empty", worst=2))
    written = write_outputs([report], "model-x", out)
    metrics = json.loads(Path(written["metrics"]).read_text())
    assert list(metrics) == ["set"]
    assert set(metrics["set"]) == CONTRACT_KEYS | {"images", "empty_predictions"}
    assert metrics["set"]["images"] == 2 and metrics["set"]["empty_predictions"] == 1
    assert all(isinstance(metrics["set"][k], float) for k in CONTRACT_KEYS)
    with (out / "plots" / "pr" / "set.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 256 and set(rows[0]) == {"threshold", "precision", "recall"}
    assert (out / "plots" / "fthreshold" / "set.csv").is_file()
    for png in ("pr_curves.png", "f_threshold.png"):
        assert (out / "report" / png).read_bytes()[:4] == b"\x89PNG"
    overlays = sorted((out / "report" / "overlays" / "set").glob("*.png"))
    assert [p.name for p in overlays] == ["01_b.png", "02_a.png"]  # worst MAE first
    table = (out / "report" / "table.md").read_text()
    assert "| model-x | .250 |" in table and "empty_predictions" in table
    details = json.loads((out / "report" / "details.json").read_text())
    assert details["datasets"]["set"]["resized_predictions"] == 1
    assert details["datasets"]["set"]["empty_prediction_list"][0]["stem"] == "b"


def test_overlay_colours():
    from engine.metrics.plots import FN_RGB, FP_RGB, TP_RGB, overlay_tp_fp_fn

    gt = np.array([[255, 255, 0, 0]], np.uint8)
    pred = np.array([[255, 0, 255, 0]], np.uint8)
    rgb = overlay_tp_fp_fn(pred, gt, 0.5).astype(int)
    dominant = [int(np.argmax(rgb[0, i])) for i in range(3)]  # pixels: TP, FN, FP
    assert dominant == [int(np.argmax(TP_RGB)), int(np.argmax(FN_RGB)), int(np.argmax(FP_RGB))] == [1, 2, 0]
    assert rgb[0, 3].tolist() == [64, 64, 64]  # true negative: darkened grey


def test_cli_evaluate(bench, tmp_path):
    from sodforge.cli import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["evaluate", "--pred", str(bench / "pred"), "--gt", str(bench), "--out", str(out),
                                      "--missing", "empty", "--worst", "1", "--method", "m"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["set"]["images"] == 2
    failed = CliRunner().invoke(app, ["evaluate", "--pred", str(bench / "pred"), "--gt", str(bench)])
    assert failed.exit_code == 2 and "no prediction" in failed.output


@pytest.mark.parametrize("command", ["evaluate", "evaluate-labels", "export"])
def test_cli_help(command):
    from sodforge.cli import app

    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert f" {command} [OPTIONS]" in result.output
