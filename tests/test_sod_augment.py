"""Decode-once pair cache and training augmentation (crop, flip, jitter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.sod.augment import AugmentParams, augment_pair, crop_box, jitter_colours
from engine.sod.cache import PairCache
from engine.sod.data import CachedPairDataset, find_label_shards, read_label_rows
from engine.sod.gt_import import import_mask_folder


@pytest.fixture(scope="module")
def rows(sample_set: Path, tmp_path_factory) -> list[dict]:
    run = import_mask_folder(sample_set, tmp_path_factory.mktemp("gt")).run_dir
    return read_label_rows(find_label_shards(run))


def _pair(height: int = 40, width: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A bright rectangle on black; the mask is exactly the rectangle."""
    image = np.zeros((height, width, 3), np.uint8)
    mask = np.zeros((height, width), np.uint8)
    image[10:30, 15:45] = 255
    mask[10:30, 15:45] = 255
    return image, mask


@pytest.mark.parametrize(("scale", "ratio"), [((0.3, 0.6), (0.75, 4 / 3)), ((0.9, 1.0), (0.5, 2.0)), ((0.1, 0.1), (1.0, 1.0))])
def test_crop_boxes_stay_inside_with_the_asked_area(scale, ratio):
    rng = np.random.default_rng(0)
    for _ in range(50):
        y0, x0, h, w = crop_box(40, 60, scale, ratio, rng)
        assert 0 <= y0 and 0 <= x0 and y0 + h <= 40 and x0 + w <= 60
        if (h, w) != (40, 60):  # not the fallback
            assert scale[0] - 0.05 <= h * w / 2400 <= scale[1] + 0.05


def test_no_augmentation_is_a_plain_resize():
    assert crop_box(40, 60, (1.0, 1.0), (0.75, 1.33), np.random.default_rng(0)) == (0, 0, 40, 60)
    image, mask = _pair()
    out_image, out_mask = augment_pair(image, mask, (20, 30), AugmentParams(hflip=False), np.random.default_rng(0))
    assert out_image.shape == (20, 30, 3) and out_mask.shape == (20, 30)
    assert out_image.dtype == out_mask.dtype == np.float32
    assert np.array_equal(out_mask, out_image[..., 0])  # image and mask resized alike
    assert out_mask[10, 15] == 1.0 and out_mask[0, 0] == 0.0


def test_crops_and_flips_move_image_and_mask_together():
    image, mask = _pair()
    params = AugmentParams(crop_scale=(0.3, 0.9), hflip=True, jitter=0.0)
    rng = np.random.default_rng(1)
    views = [augment_pair(image, mask, (32, 32), params, rng) for _ in range(20)]
    for out_image, out_mask in views:
        np.testing.assert_allclose(out_image[..., 1], out_mask, atol=1e-6)
    assert len({round(float(m.mean()), 4) for _, m in views}) > 5  # the views differ


def test_jitter_keeps_range_and_dtype_and_zero_is_identity():
    image = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    assert jitter_colours(image, 0.0, np.random.default_rng(0)) is image
    out = jitter_colours(image.copy(), 0.4, np.random.default_rng(0))
    assert out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0 and not np.allclose(out, image)


@pytest.mark.parametrize("bad", [{"crop_scale": (0.0, 1.0)}, {"crop_scale": (0.8, 0.5)}, {"jitter": 1.0}, {"crop_ratio": (2.0, 1.0)}])
def test_bad_augment_params(bad):
    with pytest.raises(ValueError, match="augment"):
        AugmentParams(**bad)


def test_cache_decodes_once_in_ram_or_on_disk_and_leaves_out_bad_pairs(rows, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    bad_row = {**rows[0], "path": str(broken), "image_id": "broken"}
    messages: list[str] = []
    in_ram = PairCache([*rows[:4], bad_row], (32, 48), workers=2, log=messages.append)
    on_disk = PairCache(rows[:4], (32, 48), workers=1, max_mb=0.001, spill_dir=tmp_path)
    assert (in_ram.on_disk, on_disk.on_disk) == (False, True)
    assert len(in_ram) == 4 and in_ram.rows == rows[:4] and in_ram.images.shape == (4, 32, 48, 3)
    assert len(in_ram.errors) == 1 and "broken.jpg" in in_ram.errors[0] and "broken.jpg" in messages[0]
    assert np.array_equal(in_ram.images, on_disk.images) and np.array_equal(in_ram.masks, on_disk.masks)
    assert set(np.unique(in_ram.masks)) >= {0, 255}


def test_cached_dataset_items_match_the_label_dataset_contract(rows):
    cache = PairCache(rows[:3], (40, 40))
    plain = CachedPairDataset(cache, (32, 32))
    torch.manual_seed(0)
    augmented = CachedPairDataset(cache, (32, 32), AugmentParams(crop_scale=(0.5, 1.0), jitter=0.2))
    for dataset in (plain, augmented):
        item = dataset[1]
        assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32) and item["index"] == 1
        assert item["image"].dtype == item["mask"].dtype == torch.float32
        assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
        assert 0.0 <= float(item["mask"].min()) and float(item["mask"].max()) <= 1.0
    torch.testing.assert_close(plain[1]["image"], plain[1]["image"])  # no randomness without augmentation
