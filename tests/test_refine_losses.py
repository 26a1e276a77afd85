"""Refinement losses on hand-computed tensors: saliency distilling, PCL-SD (schedule and masking),
IoU, BCE, multi-scale consistency."""

from __future__ import annotations

import math

import pytest
import torch

from engine.refine.losses import (
    BCELoss,
    DetectorLoss,
    IoULoss,
    MultiScaleConsistencyLoss,
    PCLSDLoss,
    SaliencyDistillingLoss,
    bce_loss,
    hard_pixel_mask,
    iou_loss,
    multiscale_consistency_loss,
    pcl_sd_loss,
    pcl_threshold,
    saliency_distilling_loss,
)

# |S - 0.5| = [0.5, 0.5, 0, 0.25]; all values exact in float32.
S = torch.tensor([1.0, 0.0, 0.5, 0.75]).view(1, 1, 2, 2)


def test_saliency_distilling_by_hand():
    assert saliency_distilling_loss(S).item() == pytest.approx(0.5 - (0.5 + 0.5 + 0 + 0.25) / 4)
    assert SaliencyDistillingLoss()(S).item() == pytest.approx(0.1875)


@pytest.mark.parametrize(
    ("p", "mask", "expected"),
    [
        (0.0, [1, 1, 1, 1], 0.1875),  # nothing masked: plain saliency distilling
        (0.25, [1, 1, 0, 1], 0.5 - (0.5 + 0.5 + 0.5 + 0.25) / 4),  # the 0.5 pixel is hard
        (0.3, [1, 1, 0, 0], 0.0),  # hard pixels contribute |0 - 0.5| = 0.5, i.e. zero loss
        (0.6, [0, 0, 0, 0], 0.0),
    ],
)
def test_pcl_sd_masks_hard_pixels(p, mask, expected):
    assert hard_pixel_mask(S, p).flatten().tolist() == mask
    assert pcl_sd_loss(S, p).item() == pytest.approx(expected)


def test_pcl_sd_gives_no_gradient_to_masked_pixels():
    probs = torch.tensor([0.9, 0.2, 0.55, 0.35]).view(1, 1, 2, 2).requires_grad_(True)
    pcl_sd_loss(probs, p=0.2).backward()
    grad = probs.grad.flatten().tolist()
    assert grad[2] == 0.0 and grad[3] == 0.0  # |S - 0.5| = 0.05, 0.15 < 0.2
    assert grad[0] == pytest.approx(-0.25) and grad[1] == pytest.approx(0.25)  # pushed away from 0.5


@pytest.mark.parametrize(
    ("epoch", "epochs", "expected"),
    [(0, 10, 0.2), (1, 10, 0.14), (2.5, 10, 0.05), (3, 10, 0.02), (10 / 3, 10, 0.0), (4, 10, 0.0), (10, 10, 0.0), (0, 1, 0.2)],
)
def test_pcl_threshold_schedule(epoch, epochs, expected):
    assert pcl_threshold(epoch, epochs) == pytest.approx(expected, abs=1e-12)


def test_pcl_module_follows_schedule():
    loss = PCLSDLoss()
    assert loss(S, epoch=0, epochs=10).item() == pytest.approx(pcl_sd_loss(S, 0.2).item())
    assert loss(S, epoch=9, epochs=10).item() == pytest.approx(0.1875)
    with pytest.raises(ValueError, match="epochs"):
        pcl_threshold(0, 0)


def test_iou_bce_consistency_by_hand():
    probs = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 2, 2)
    target = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    assert iou_loss(probs, target).item() == pytest.approx(1 - 1 / 3, abs=1e-5)  # inter 1, union 3
    assert IoULoss()(target, target).item() == pytest.approx(0.0, abs=1e-6)
    assert bce_loss(torch.zeros(1, 1, 2, 2), target).item() == pytest.approx(math.log(2))
    assert BCELoss()(torch.zeros(1, 1, 2, 2), target).item() == pytest.approx(math.log(2))
    # the smaller-scale map is resized to the larger one before the MSE
    assert multiscale_consistency_loss(torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 2, 2)).item() == pytest.approx(1.0)
    assert MultiScaleConsistencyLoss()(torch.full((1, 1, 4, 4), 0.5), torch.full((1, 1, 2, 2), 0.5)).item() == 0.0


def test_detector_loss_combines_terms():
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    iou_only = DetectorLoss(1.0, 0.0, 1.0)(logits, target, logits)
    assert iou_only.item() == pytest.approx(iou_loss(torch.full_like(logits, 0.5), target).item())
    both = DetectorLoss(1.0, 1.0, 0.0)(logits, target)
    assert both.item() == pytest.approx(iou_only.item() + math.log(2))


@pytest.mark.parametrize("bad", [torch.zeros(2, 2), torch.zeros(1, 3, 2, 2)])
def test_losses_reject_bad_shapes(bad):
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        saliency_distilling_loss(bad)
    with pytest.raises(ValueError):
        iou_loss(bad, bad)
