"""The pixel-adaptive refiner on a synthetic step edge, the SPR update rule, the label bank, cues
and the documented label corruptions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.refine.corruptions import KINDS, corrupt_mask
from engine.refine.cues import cues_to_labels, flip_if_background, otsu_threshold
from engine.refine.par import PixelAdaptiveRefiner, dilated_neighbours, par_affinity, pixel_adaptive_refine
from engine.refine.spr import LabelBank, SelfRectifier, spr_update


def _step_edge(noise: float = 0.15, seed: int = 0):
    """32x32 image dark left / bright right, its true mask, and the mask with 15% of pixels flipped.

    (Pixel noise in the image would make PAR's affinity follow the noise inside flat regions, since
    distances are measured in units of the local std; the edge is what it is meant to respect.)
    """
    generator = torch.Generator().manual_seed(seed)
    image = torch.zeros(1, 3, 32, 32)
    image[..., 16:] = 1.0
    truth = torch.zeros(1, 1, 32, 32)
    truth[..., 16:] = 1.0
    noisy = truth.clone()
    flips = torch.rand(truth.shape, generator=generator) < noise
    noisy[flips] = 1.0 - noisy[flips]
    return image, truth, noisy


def test_dilated_neighbours_by_hand():
    x = torch.arange(9.0).view(1, 1, 3, 3)
    neighbours = dilated_neighbours(x, (1,))
    assert neighbours.shape == (1, 1, 8, 3, 3)
    # centre pixel (value 4): its 8 neighbours in row-major order
    assert neighbours[0, 0, :, 1, 1].tolist() == [0, 1, 2, 3, 5, 6, 7, 8]
    # top-left corner: replicate padding repeats the border
    assert neighbours[0, 0, :, 0, 0].tolist() == [0, 0, 1, 0, 1, 3, 3, 4]


def test_affinity_rows_sum_to_one_plus_positional_weight():
    image, _, _ = _step_edge()
    affinity = par_affinity(image, (1, 2, 4, 8), 0.3, 0.01)
    assert affinity.shape == (1, 1, 32, 32, 32)
    assert torch.allclose(affinity.sum(dim=2), torch.full((1, 1, 32, 32), 1.01), atol=1e-5)


def test_par_removes_noise_and_keeps_the_step_edge():
    image, truth, noisy = _step_edge()
    refined = pixel_adaptive_refine(image, noisy, iterations=6)
    assert refined.shape == truth.shape and refined.max().item() == pytest.approx(1.0)
    assert torch.equal((refined > 0.5).float(), truth)  # every flipped pixel restored
    # the edge stays a step: the columns either side of it differ by more than 0.5
    assert (refined[..., 16].mean() - refined[..., 15].mean()).item() > 0.5
    # noise inside each side is smoothed: spread far below the input's
    assert refined[..., :14].std().item() < 0.5 * noisy[..., :14].std().item()


def test_par_module_resizes_the_mask_and_validates_shapes():
    image, truth, _ = _step_edge()
    small = torch.nn.functional.interpolate(truth, size=(16, 16))
    assert PixelAdaptiveRefiner()(image, small).shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="PAR expects"):
        pixel_adaptive_refine(image, truth[0])


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        # pixels: (r_pri, r_post, g_pre) = (1, .5, 0), (0, 0, 1), (0, 0, 0)
        ((0.2, 0.6, 0.2), [1.0, 0.2 / 0.5, 0.0]),  # sums 0.5, 0.2, 0 then / max 0.5
        ((0.1, 0.7, 0.2), [1.0, 0.2 / 0.45, 0.0]),
        ((0.0, 0.0, 1.0), [0.0, 1.0, 0.0]),
    ],
)
def test_spr_update_weights_then_max_normalises(weights, expected):
    r_pri = torch.tensor([1.0, 0.0, 0.0]).view(1, 1, 1, 3)
    r_post = torch.tensor([0.5, 0.0, 0.0]).view(1, 1, 1, 3)
    g_pre = torch.tensor([0.0, 1.0, 0.0]).view(1, 1, 1, 3)
    out = spr_update(r_pri, r_post, g_pre, weights)
    assert out.flatten().tolist() == pytest.approx(expected)


def test_spr_is_per_sample_and_keeps_empty_labels_empty():
    zeros = torch.zeros(2, 1, 2, 2)
    post = zeros.clone()
    post[0] = 0.25
    out = spr_update(zeros, post, zeros)
    assert torch.allclose(out[0], torch.ones(1, 2, 2)) and torch.equal(out[1], zeros[1])
    with pytest.raises(ValueError, match="share"):
        spr_update(zeros, zeros[:1], zeros)


def test_self_rectifier_prior_comes_from_the_refined_prediction():
    image, truth, noisy = _step_edge()
    rectifier = SelfRectifier(PixelAdaptiveRefiner(), (1.0, 0.0, 0.0))
    out = rectifier(image, noisy, torch.zeros_like(noisy))
    assert torch.equal((out > 0.5).float(), truth)


def test_label_bank_round_trip_and_copy(tmp_path):
    bank = LabelBank(tmp_path / "a.u8", count=3, size=4)
    labels = torch.tensor([0.0, 1.0, 0.5, 0.2]).repeat(2, 1, 4, 1)
    bank.set([2, 0], labels)
    assert torch.allclose(bank.get([0, 2]), labels, atol=1 / 255)
    assert torch.equal(bank.get([1]), torch.zeros(1, 1, 4, 4))
    copy = bank.copy_to(tmp_path / "b.u8")
    copy.set([0], torch.zeros(1, 1, 4, 4))
    assert bank.get([0]).max().item() == 1.0  # the previous version is untouched
    assert torch.equal(LabelBank.open(tmp_path / "b.u8", 3, 4).get([0]), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="label bank"):
        LabelBank.open(tmp_path / "a.u8", 5, 4)


def test_flip_only_when_most_corners_are_salient():
    inverted = torch.ones(2, 1, 10, 10)
    inverted[:, :, 3:7, 3:7] = 0.0  # object dark, background salient
    inverted[1, :, :2, :2] = 0.0  # second image: only 3 salient corners, still flipped
    out, flipped = flip_if_background(inverted)
    assert flipped.tolist() == [True, True] and out[0, 0, 5, 5].item() == 1.0
    upright, flipped = flip_if_background(1.0 - inverted[:1])
    assert flipped.tolist() == [False] and torch.equal(upright, 1.0 - inverted[:1])


def test_cues_to_labels_thresholds_with_otsu():
    cues = torch.full((1, 1, 16, 16), 0.2)
    cues[..., 4:12, 4:12] = 0.7
    assert 0.2 <= otsu_threshold(cues[0, 0].numpy()) < 0.7
    image = torch.zeros(1, 3, 16, 16)
    image[..., 4:12, 4:12] = 1.0
    square = (cues > 0.5).float()
    assert torch.equal(cues_to_labels(image, cues, PixelAdaptiveRefiner()), square)
    rounded = cues_to_labels(image, cues, PixelAdaptiveRefiner(), median=3)  # 3x3 median eats the 4 corners
    assert (square - rounded).sum().item() == 4 and rounded[0, 0, 4, 4].item() == 0.0


REMOVES_ONLY = {"erode", "holes", "missing_part"}
ADDS_ONLY = {"dilate", "false_blobs", "extra_region", "box"}


@pytest.mark.parametrize("kind", KINDS)
def test_corruptions_change_the_mask_in_their_documented_way(kind):
    mask = np.zeros((96, 128), bool)
    mask[20:70, 30:60] = True  # an L-shaped object, so its box differs from it
    mask[50:70, 60:100] = True
    noisy, name = corrupt_mask(mask, np.random.default_rng(0), kind=kind)
    assert name == kind and noisy.shape == mask.shape and noisy.dtype == bool and (noisy != mask).any()
    if kind in REMOVES_ONLY:
        assert not (noisy & ~mask).any() and noisy.any()
    if kind in ADDS_ONLY:
        assert not (mask & ~noisy).any()
    if kind == "box":  # exactly a rectangle around the object
        ys, xs = np.nonzero(noisy)
        assert noisy[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
    changed = np.mean(noisy != mask) / mask.mean()
    assert 0.01 < changed < 1.5  # a realistic error: visible, not a different object
    assert np.array_equal(corrupt_mask(np.zeros_like(mask), np.random.default_rng(0), kind=kind)[0], np.zeros_like(mask))


def test_corrupt_mask_cycles_kinds_and_refuses_bad_input():
    mask = np.zeros((32, 32), bool)
    mask[8:24, 8:24] = True
    assert [corrupt_mask(mask, np.random.default_rng(0), index=i)[1] for i in range(len(KINDS) + 1)] == [*KINDS, KINDS[0]]
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt_mask(mask, np.random.default_rng(0), kind="smudge")
    with pytest.raises(ValueError, match=r"\(H, W\) mask"):
        corrupt_mask(mask[None], np.random.default_rng(0))
