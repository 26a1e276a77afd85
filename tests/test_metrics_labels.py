"""Pseudo-label quality against true masks: label shards of a run scored with the same metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.catalog import RunRecord, Workdir
from engine.labeling.record import PseudoLabel, labels_to_table
from engine.masks import encode_rle
from engine.metrics import EvaluateParams, evaluate_label_run, latest_run_id, write_outputs
from engine.storage import write_table_atomic

GT = np.zeros((8, 8), np.uint8)
GT[:4] = 255


def label(stem: str, run: str, status: str, mask: np.ndarray | None = None) -> PseudoLabel:
    return PseudoLabel(
        image_id=f"id-{stem}", path=f"/imgs/{stem}.jpg", run_id=run, shard="shard-00000", status=status,
        error="decode failed" if status == "error" else None, height=8, width=8,
        mask_rle=encode_rle(mask > 128) if mask is not None else None,
    )


def write_run(wd: Workdir, run: str, labels: list[PseudoLabel], started: datetime) -> None:
    write_table_atomic(labels_to_table(labels), wd.labels_dir(run) / "shard-00000.parquet")
    RunRecord(run, "build-pseudo-labels", {}, {}, started_at=started).save(wd)


@pytest.fixture
def labelled(tmp_path: Path) -> tuple[Path, Path]:
    """GT for a, b, c, d. Old run: all perfect. New run: a perfect, b inverted, c no_object, d error."""
    gt_dir = tmp_path / "masks"
    gt_dir.mkdir()
    for stem in "abcd":
        cv2.imwrite(str(gt_dir / f"{stem}.png"), GT)
    wd = Workdir.at(tmp_path / "work")
    now = datetime.now(UTC)
    write_run(wd, "old", [label(s, "old", "ok", GT) for s in "abcd"], now - timedelta(hours=1))
    write_run(wd, "new", [label("a", "new", "ok", GT), label("b", "new", "ok", 255 - GT),
                          label("c", "new", "no_object"), label("d", "new", "error"),
                          label("zzz", "new", "ok", GT)], now)
    return wd.root, gt_dir


def test_newest_run_by_start_time(labelled):
    assert latest_run_id(labelled[0]) == "new"


@pytest.mark.parametrize(
    ("run", "mae", "empty"),
    [
        ("old", 0.0, 0),
        # a: 0, b (inverted): 1, c and d (not ok -> empty map): 0.5 each
        ("new", (0 + 1 + 0.5 + 0.5) / 4, 2),
        (None, (0 + 1 + 0.5 + 0.5) / 4, 2),
    ],
)
def test_label_run_scores(labelled, run, mae, empty):
    workdir, gt = labelled
    report, run_id = evaluate_label_run(workdir, gt, run)
    assert run_id == (run or "new")
    assert report.scores.images == 4
    assert report.scores.metrics["MAE"] == pytest.approx(mae)
    assert len(report.empty_predictions) == empty


def test_not_ok_labels_are_named_in_the_output(labelled, tmp_path):
    workdir, gt = labelled
    out = tmp_path / "out"
    report, run_id = evaluate_label_run(workdir, gt, out_dir=out, params=EvaluateParams(worst=2))
    write_outputs([report], f"pseudo-labels {run_id}", out, extra={"labelling_run": run_id})
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics[report.name]["empty_predictions"] == 2
    details = json.loads((out / "report" / "details.json").read_text())
    reasons = {e["stem"]: e["reason"] for e in details["datasets"][report.name]["empty_prediction_list"]}
    assert reasons == {"c": "status no_object: scored as an empty map",
                       "d": "status error (decode failed): scored as an empty map"}
    assert details["datasets"][report.name]["predictions_without_ground_truth_examples"] == ["/imgs/zzz.jpg"]
    assert [p.name for p in sorted((out / "report" / "overlays" / report.name).glob("*.png"))] == ["01_b.png", "02_c.png"]


def test_gt_without_label_follows_the_missing_policy(labelled):
    workdir, gt = labelled
    cv2.imwrite(str(gt / "e.png"), GT)
    with pytest.raises(ValueError, match="no prediction"):
        evaluate_label_run(workdir, gt, "new")
    report, _ = evaluate_label_run(workdir, gt, "new", params=EvaluateParams(missing="skip"))
    assert report.scores.images == 4 and report.skipped[0]["stem"] == "e"


def test_duplicate_stems_in_a_run_are_an_error(tmp_path):
    wd = Workdir.at(tmp_path / "w")
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    cv2.imwrite(str(gt_dir / "a.png"), GT)
    twin = label("a", "r", "ok", GT)
    twin.image_id, twin.path = "id-other", "/other/a.png"
    write_run(wd, "r", [label("a", "r", "ok", GT), twin], datetime.now(UTC))
    with pytest.raises(ValueError, match="share the stem 'a'"):
        evaluate_label_run(wd.root, gt_dir)


def test_cli_evaluate_labels(labelled, tmp_path):
    from typer.testing import CliRunner

    from sodforge.cli import app

    workdir, gt = labelled
    json_path = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["evaluate-labels", "--workdir", str(workdir), "--gt", str(gt),
                                      "--run", "old", "--json", str(json_path)])
    assert result.exit_code == 0, result.output
    block = next(iter(json.loads(json_path.read_text()).values()))
    assert block["MAE"] == 0.0 and block["images"] == 4
