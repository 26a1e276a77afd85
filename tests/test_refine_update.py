"""Writing refined labels back at full resolution: only confident change, never resampling, per-label bounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.refine.data import resize_mask
from engine.refine.params import UpdateParams
from engine.refine.spr import LabelBank
from engine.refine.update import confident_change, update_label

SIZE = 16  # training size: one bank pixel covers ~8 x 6 full-size pixels below


def _detailed_mask() -> np.ndarray:
    """97 x 131 mask with detail a 16 px bank cannot hold: a 1 px line, a ragged edge, a 2 px dot."""
    mask = np.zeros((97, 131), bool)
    mask[20:70, 30:90] = True
    mask[5, :] = True  # a 1 px wire
    mask[20:70:3, 90:93] = True  # comb teeth on the right edge
    mask[80:82, 10:12] = True
    return mask


def _bank_value(label: torch.Tensor, tmp_path) -> np.ndarray:
    """``label`` (1, S, S) stored in and read back from a uint8 label bank, as a run does."""
    bank = LabelBank(tmp_path / "bank.u8", 1, SIZE)
    bank.set([0], label[None])
    return bank.array[0] / 255.0


@pytest.mark.parametrize("guide", [True, False])
def test_a_round_trip_returns_the_source_mask_bit_for_bit(guide, tmp_path):
    source = _detailed_mask()
    init = resize_mask(source, SIZE)
    image = np.random.default_rng(0).integers(0, 255, (*source.shape, 3), dtype=np.uint8)
    result = update_label(source, init[0].numpy(), _bank_value(init, tmp_path), image, UpdateParams(guide=guide))
    assert result.action == "unchanged" and result.change == 0.0 and result.reason is None
    assert np.array_equal(result.mask, source)
    # what the old write-back did (upsample the bank label and threshold it) loses the detail
    from engine.refine.data import upsample_label

    naive = upsample_label(_bank_value(init, tmp_path), source.shape) > 0.5
    assert not np.array_equal(naive, source) and not naive[5].any()


def test_only_confident_change_is_applied_and_counted(tmp_path):
    source = _detailed_mask()
    init = resize_mask(source, SIZE)
    refined = init.clone()
    refined[:, 8:12, 8:12] = 0.45  # a weak doubt about the object's lower right: below the margin
    refined[:, 3:6, :] = 0.0  # a confident removal of the box's top (bank rows 3-5 = full rows ~18-36)
    refined[:, :2, :] = 0.0  # the 1 px wire is 1/6 of its bank pixel: removing it is no confident change
    changed, _ = confident_change(source, init[0].numpy(), refined[0].numpy(), margin=0.2)
    assert changed[24:34, 40:80].all() and not changed[:20].any() and not changed[42:].any()
    result = update_label(source, init[0].numpy(), refined[0].numpy(), None, UpdateParams(guide=False))
    assert result.action == "refined" and not result.mask[24:34, 40:80].any() and result.mask[5].all()
    assert np.array_equal(result.mask[42:], source[42:])  # the rest of the mask is untouched
    assert result.change == pytest.approx(np.mean(result.mask != source)) and 0.04 < result.change < 0.15


@pytest.mark.parametrize(
    ("fill", "action", "reason"),
    [(1.0, "kept_source", "collapsed: is (nearly) the whole image"), (0.0, "kept_source", "collapsed: is (nearly) empty"),
     (0.97, "kept_source", "collapsed: is (nearly) the whole image")],
)
def test_empty_or_full_results_keep_the_source(fill, action, reason):
    source = _detailed_mask()
    init = resize_mask(source, SIZE)[0].numpy()
    refined = np.full_like(init, fill)
    refined[0, 0] = 0.0  # 1 of 256 bank pixels: still (nearly) everything / nothing
    result = update_label(source, init, refined, None, UpdateParams(guide=False))
    assert result.action == action and reason in result.reason
    assert np.array_equal(result.mask, source) and result.change == 0.0


def test_a_written_mask_that_would_cover_the_image_keeps_the_source():
    source = np.zeros((64, 64), bool)
    source[4:60, 4:60] = True  # 77% of the image
    init = resize_mask(source, SIZE)[0].numpy()
    refined = init.copy()
    refined[0, :] = 1.0  # grow over the top rows only: the refined label itself covers 81%
    result = update_label(source, init, refined, None, UpdateParams(guide=False, max_area_frac=0.8))
    assert result.action == "kept_source" and "whole image" in result.reason


def test_a_change_larger_than_max_change_keeps_the_source():
    source = np.zeros((64, 64), bool)
    source[8:56, 8:56] = True  # a box-shaped label
    init = resize_mask(source, SIZE)[0].numpy()
    refined = init.copy()
    refined[2:14, 2:7] = 0.0  # refinement would cut away a third of it
    loose = update_label(source, init, refined, None, UpdateParams(guide=False, max_change=0.5))
    assert loose.action == "refined" and 0.1 < loose.change < 0.5
    tight = update_label(source, init, refined, None, UpdateParams(guide=False, max_change=0.05))
    assert tight.action == "kept_source" and "max_change" in tight.reason and np.array_equal(tight.mask, source)


def test_guided_update_puts_the_new_boundary_on_the_image_edge():
    """A box-shaped label over an object that ends at column 37: the coarse change lands on the edge."""
    height, width = 64, 64
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :37] = 200  # the object: bright, columns 0-36
    source = np.zeros((height, width), bool)
    source[:, :48] = True  # the label spills 11 px onto the dark background
    init = resize_mask(source, SIZE)[0].numpy()
    refined = init.copy()
    refined[:, 9:] = 0.0  # refinement (at 16 px, 4 px per cell) says: background from column 36 on
    coarse = update_label(source, init, refined, None, UpdateParams(guide=False)).mask
    guided = update_label(source, init, refined, image, UpdateParams(guide=True)).mask
    truth = np.zeros_like(source)
    truth[:, :37] = True
    assert np.mean(guided != truth) < np.mean(coarse != truth) and np.mean(guided != truth) < 0.01


def test_bad_inputs_are_refused():
    source = _detailed_mask()
    init = resize_mask(source, SIZE)[0].numpy()
    with pytest.raises(ValueError, match="bool mask"):
        update_label(source.astype(np.uint8), init, init, None, UpdateParams())
    with pytest.raises(ValueError, match="same size"):
        confident_change(source, init, init[:8, :8], 0.2)
    with pytest.raises(ValueError, match="margin"):
        UpdateParams(margin=0.5)


@pytest.mark.parametrize(("area_rows", "status", "action"), [(64, "no_object", "rejected"), (63, "ok", "kept_source")])
# 100% of the image, or 98.4% (kept with reject_source_above 0.99)
def test_a_kept_source_mask_covering_the_image_is_not_written_as_ok(area_rows, status, action):
    from engine.masks import encode_rle
    from engine.refine.records import refined_row, reject_full_mask

    mask = np.zeros((64, 64), bool)
    mask[:area_rows] = True
    row = {"image_id": "a", "path": "a.png", "status": "ok", "height": 64, "width": 64, "mask_rle": encode_rle(mask),
           "mask_area_frac": None}
    out = reject_full_mask(refined_row(row, "refine-x", "src", None, None, "kept_source", "gate failed"), 0.99)
    assert (out["status"], out["refine_action"]) == (status, action)
    if status == "no_object":
        assert out["mask_rle"] is None
        assert "covers 100.0% of the image" in out["error"] and out["error"] == out["refine_reason"]
    else:
        assert out["mask_rle"] == row["mask_rle"] and out["refine_reason"] == "gate failed"
