"""Benchmark layouts found without flags (DUTS, ECSSD/HKU-IS/PASCAL-S style) by every command that
reads them, and ``evaluate-labels --labels DIR`` on any folder of label shards."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from engine.images.layout import find_layout
from engine.images.manifest import images_root
from sodforge.cli import app

MASK = np.zeros((12, 16), np.uint8)
MASK[3:9, 4:12] = 255


def make_set(root: Path, image_dir: str | None, mask_dir: str | None, stems=("a", "b", "c")) -> Path:
    """``root/<image_dir>/<stem>.jpg`` (or images in ``root`` when None) and ``root/<mask_dir>/<stem>.png``."""
    images = root / image_dir if image_dir else root
    images.mkdir(parents=True, exist_ok=True)
    for index, stem in enumerate(stems):
        picture = np.full((12, 16, 3), 40 + 50 * index, np.uint8)
        picture[MASK > 0] = 230
        cv2.imwrite(str(images / f"{stem}.jpg"), picture)
        if mask_dir:
            (root / mask_dir).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / mask_dir / f"{stem}.png"), MASK)
    return root


@pytest.mark.parametrize(
    ("image_dir", "mask_dir"),
    [("DUTS-TE-Image", "DUTS-TE-Mask"), ("images", "masks"), ("images", "gt"), ("Imgs", "GT"), ("imgs", "gt"),
     ("Image", "Mask"), ("ECSSD_images", "ECSSD_masks"), (None, "masks")],
)
def test_layouts_are_found_from_the_set_folder_and_from_either_sub_folder(tmp_path, image_dir, mask_dir):
    root = make_set(tmp_path / "SET-1k", image_dir, mask_dir)
    (root / "depth").mkdir()  # other folders are ignored
    images, masks = (root / image_dir if image_dir else root), root / mask_dir
    for start, role in ((root, "images"), (images, "images"), (masks, "masks")):
        layout = find_layout(start, role)
        assert (layout.images, layout.masks, layout.name) == (images, masks, "SET-1k"), start
    assert images_root(root) == images


def test_a_plain_folder_takes_the_role_it_is_given(tmp_path):
    folder = make_set(tmp_path / "anything", None, None)
    assert find_layout(folder, "images").images == folder and find_layout(folder, "images").masks is None
    assert find_layout(folder, "masks").masks == folder
    with pytest.raises(ValueError, match=r"anything: no masks folder found \(looked for \*-Mask"):
        find_layout(folder, "images").require("masks")


def test_two_duts_sets_in_one_folder_are_ambiguous(tmp_path):
    make_set(tmp_path / "DUTS", "DUTS-TR-Image", "DUTS-TR-Mask")
    make_set(tmp_path / "DUTS", "DUTS-TE-Image", "DUTS-TE-Mask")
    with pytest.raises(ValueError, match="several data sets .*duts-te, duts-tr"):
        find_layout(tmp_path / "DUTS")
    # each sub-folder still finds its own partner
    assert find_layout(tmp_path / "DUTS" / "DUTS-TE-Image").masks == tmp_path / "DUTS" / "DUTS-TE-Mask"


def test_import_masks_finds_duts_and_ecssd_layouts(tmp_path):
    runner = CliRunner()
    for name, (image_dir, mask_dir) in {"DUTS-TE-1k": ("DUTS-TE-Image", "DUTS-TE-Mask"), "ECSSD": ("images", "gt")}.items():
        root = make_set(tmp_path / name, image_dir, mask_dir)
        result = runner.invoke(app, ["import-masks", str(root), "--out", str(tmp_path / f"labels-{name}")])
        assert result.exit_code == 0, result.output
        assert "'ok': 3" in result.output


def test_evaluate_finds_the_masks_of_a_duts_folder_and_config_roots(tmp_path):
    root = make_set(tmp_path / "DUTS-TE-1k", "DUTS-TE-Image", "DUTS-TE-Mask")
    ecssd = make_set(tmp_path / "ECSSD", "images", "gt")
    preds = tmp_path / "preds"
    for name in ("DUTS-TE-1k", "ECSSD"):
        (preds / name).mkdir(parents=True)
        for stem in "abc":
            cv2.imwrite(str(preds / name / f"{stem}.png"), MASK)
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--pred", str(preds / "DUTS-TE-1k"), "--gt", str(root),
                                 "--json", str(tmp_path / "one.json")])
    assert result.exit_code == 0, result.output
    one = json.loads((tmp_path / "one.json").read_text())
    assert one["DUTS-TE-1k"]["MAE"] == 0.0 and one["DUTS-TE-1k"]["images"] == 3
    config = tmp_path / "datasets.json"
    config.write_text(json.dumps({"DUTS-TE-1k": "DUTS-TE-1k", "ECSSD": {"root": str(ecssd)},
                                  "mask-path-is-a-root": {"mask": {"path": "ECSSD", "suffix": ".png"},
                                                          "pred": {"path": "preds/ECSSD"}}}))
    result = runner.invoke(app, ["evaluate", "--pred", str(preds), "--config", str(config), "--json",
                                 str(tmp_path / "all.json")])
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "all.json").read_text())
    assert [scores[name]["MAE"] for name in ("DUTS-TE-1k", "ECSSD", "mask-path-is-a-root")] == [0.0, 0.0, 0.0]
    assert scores["mask-path-is-a-root"]["images"] == 3


def test_evaluate_labels_scores_any_label_shard_folder(tmp_path):
    from engine.labeling.record import PseudoLabel, labels_to_table
    from engine.masks import decode_rle, encode_rle
    from engine.sod.data import find_label_shards, read_label_rows
    from engine.storage import write_table_atomic

    root = make_set(tmp_path / "DUTS-TE-1k", "DUTS-TE-Image", "DUTS-TE-Mask")
    runner = CliRunner()
    assert runner.invoke(app, ["import-masks", str(root), "--out", str(tmp_path / "labels")]).exit_code == 0
    result = runner.invoke(app, ["evaluate-labels", "--labels", str(tmp_path / "labels"), "--gt", str(root),
                                 "--json", str(tmp_path / "true.json")])
    assert result.exit_code == 0, result.output
    block = json.loads((tmp_path / "true.json").read_text())["DUTS-TE-1k"]
    assert block["MAE"] == 0.0 and block["images"] == 3 and set(block) >= {"Smeasure", "maxFm", "meanEm", "wFmeasure"}

    # a hand-made shard folder (not a workdir): a inverted, b perfect, c no_object (scored as empty)
    rows = {Path(r["path"]).stem: r for r in read_label_rows(find_label_shards(tmp_path / "labels"))}
    truth = decode_rle(rows["a"]["mask_rle"], (12, 16))
    made = [PseudoLabel(rows[s]["image_id"], rows[s]["path"], "mine", "shard-00000", status, height=12, width=16,
                        mask_rle=encode_rle(m) if m is not None else None)
            for s, status, m in (("a", "ok", ~truth), ("b", "ok", truth), ("c", "no_object", None))]
    write_table_atomic(labels_to_table(made), tmp_path / "mine" / "shard-00000.parquet")
    result = runner.invoke(app, ["evaluate-labels", "--labels", str(tmp_path / "mine"), "--gt",
                                 str(root / "DUTS-TE-Mask"), "--json", str(tmp_path / "mine.json")])
    assert result.exit_code == 0, result.output
    block = json.loads((tmp_path / "mine.json").read_text())["DUTS-TE-1k"]
    area = float((MASK > 0).mean())
    assert block["MAE"] == pytest.approx((1.0 + 0.0 + area) / 3, abs=1e-6)
    assert block["empty_predictions"] == 1


@pytest.mark.parametrize("flags", [[], ["--workdir", "w", "--labels", "l"]])
def test_evaluate_labels_needs_exactly_one_source(tmp_path, flags):
    result = CliRunner().invoke(app, ["evaluate-labels", "--gt", str(tmp_path), *flags])
    assert result.exit_code == 2 and "exactly one of --workdir DIR or --labels DIR" in result.output
