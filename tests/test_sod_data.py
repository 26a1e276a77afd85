"""Label-shard dataset, true-mask import, split rule, prediction files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.labeling.record import PseudoLabel, labels_to_table
from engine.masks import encode_rle
from engine.sod.data import (
    LabelShardDataset,
    find_label_shards,
    read_label_rows,
    select_split,
    split_of,
)
from engine.sod.gt_import import import_mask_folder
from engine.storage import write_table_atomic


@pytest.fixture(scope="module")
def gt_labels(sample_set: Path, tmp_path_factory) -> Path:
    """The sample set's true masks imported as label shards (4 images per shard)."""
    return import_mask_folder(sample_set, tmp_path_factory.mktemp("gt"), shard_size=4).run_dir


def test_import_writes_one_ok_label_per_image_with_the_true_mask(sample_set, gt_labels):
    shards = find_label_shards(gt_labels)
    assert [p.name for p in shards] == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    rows = read_label_rows(shards)
    assert len(rows) == 12 and {r["run_id"] for r in rows} == {gt_labels.name.removeprefix("run=")}
    from engine.masks import decode_rle

    for row in rows[:3]:
        truth = np.asarray(Image.open(sample_set / "masks" / f"{Path(row['path']).stem}.png")) > 127
        assert np.array_equal(decode_rle(row["mask_rle"], (row["height"], row["width"])), truth)


def test_import_is_stable_and_reports_missing_masks(sample_set, tmp_path):
    first = import_mask_folder(sample_set, tmp_path / "a")
    assert import_mask_folder(sample_set, tmp_path / "b").run_id == first.run_id  # same files, same run id
    images = tmp_path / "set" / "images"
    images.mkdir(parents=True)
    (tmp_path / "set" / "masks").mkdir()
    Image.new("RGB", (16, 12), (200, 10, 10)).save(images / "lonely.png")
    Image.new("RGB", (16, 12), (10, 10, 10)).save(images / "empty.png")
    Image.new("L", (16, 12), 0).save(tmp_path / "set" / "masks" / "empty.png")
    result = import_mask_folder(tmp_path / "set", tmp_path / "c")
    assert result.counts == {"ok": 0, "no_object": 1, "error": 1}


def _write_shard(path: Path, labels: list[PseudoLabel]) -> None:
    write_table_atomic(labels_to_table(labels), path)


def test_dataset_reads_rle_shards_and_skips_non_ok_and_low_quality(tmp_path):
    image = np.zeros((8, 12, 3), np.uint8)
    image[:, 6:] = 255
    Image.fromarray(image).save(tmp_path / "a.png")
    mask = np.zeros((8, 12), bool)
    mask[2:6, 3:9] = True
    common = {"run_id": "r", "shard": "shard-00000", "height": 8, "width": 12}
    _write_shard(tmp_path / "labels" / "shard-00000.parquet", [
        PseudoLabel("id-a", str(tmp_path / "a.png"), status="ok", mask_rle=encode_rle(mask), quality_score=0.9, **common),
        PseudoLabel("id-b", str(tmp_path / "a.png"), status="ok", mask_rle=encode_rle(mask), quality_score=0.1, **common),
        PseudoLabel("id-c", str(tmp_path / "a.png"), status="error", error="broken", **common),
        PseudoLabel("id-d", str(tmp_path / "a.png"), status="no_object", **common),
    ])
    shards = find_label_shards(tmp_path / "labels")
    assert [r["image_id"] for r in read_label_rows(shards)] == ["id-a", "id-b"]
    rows = read_label_rows(shards, min_quality=0.5)
    assert [r["image_id"] for r in rows] == ["id-a"]
    item = LabelShardDataset(rows, (8, 12))[0]  # same size: pixels pass through unchanged
    assert item["image"].shape == (3, 8, 12) and item["mask"].shape == (1, 8, 12)
    assert torch.equal(item["mask"][0], torch.from_numpy(mask.astype(np.float32)))
    assert item["image"][:, :, 6:].min() == 1.0 and item["image"][:, :, :6].max() == 0.0
    small = LabelShardDataset(rows, (4, 6))[0]
    assert small["mask"].shape == (1, 4, 6) and 0.0 <= small["mask"].min() <= small["mask"].max() <= 1.0


def test_hflip_flips_image_and_mask_together(gt_labels):
    rows = read_label_rows(find_label_shards(gt_labels))[:1]
    plain = LabelShardDataset(rows, (32, 32))[0]
    torch.manual_seed(0)
    flips = [LabelShardDataset(rows, (32, 32), hflip=True)[0] for _ in range(8)]
    flipped = [f for f in flips if not torch.equal(f["mask"], plain["mask"])]
    assert flipped and len(flipped) < 8
    for item in flipped:
        assert torch.equal(item["mask"], plain["mask"].flip(-1)) and torch.equal(item["image"], plain["image"].flip(-1))


def test_split_is_a_stable_function_of_the_id():
    ids = [f"{i:032x}" for i in range(2000)]
    val = [i for i in ids if split_of(i, 0.25) == "val"]
    assert 0.22 < len(val) / len(ids) < 0.28
    assert val == [i for i in ids if split_of(i, 0.25) == "val"]
    assert val != [i for i in ids if split_of(i, 0.25, seed=1) == "val"]
    rows = [{"image_id": i} for i in ids[:40]]
    train, held = select_split(rows, "train", 0.25), select_split(rows, "val", 0.25)
    assert len(train) + len(held) == 40 and not {r["image_id"] for r in train} & {r["image_id"] for r in held}


def test_find_label_shards_picks_a_run(tmp_path):
    for run in ("gt-1", "gt-2"):
        (tmp_path / f"run={run}").mkdir()
        (tmp_path / f"run={run}" / "shard-00000.parquet").write_bytes(b"x")
    assert find_label_shards(tmp_path, "gt-1") == [tmp_path / "run=gt-1" / "shard-00000.parquet"]
    with pytest.raises(ValueError, match="no run 'gt-3'"):
        find_label_shards(tmp_path, "gt-3")
    with pytest.raises(ValueError, match="label folder not found"):
        find_label_shards(tmp_path / "nowhere")
