"""Losses on hand-computed tensors; partial-BCE masking; edges from masks."""

from __future__ import annotations

import math

import pytest
import torch

from engine.sod.losses import (
    LossWeights,
    PartialBCELoss,
    SODLoss,
    bce_loss,
    confident_pixels,
    edge_loss,
    iou_loss,
    mask_edges,
    partial_bce_loss,
)

LN2, LN3 = math.log(2.0), math.log(3.0)
BCE_T1_P75 = -math.log(0.75)  # target 1, logit ln 3 (p = 0.75)


def row(*values: float) -> torch.Tensor:
    return torch.tensor(values).view(1, 1, 1, -1)


@pytest.mark.parametrize(
    ("logits", "target", "expected"),
    [
        (row(0.0, 0.0), row(0.0, 1.0), LN2),
        (row(LN3), row(1.0), BCE_T1_P75),
        (row(LN3, -LN3), row(1.0, 0.0), BCE_T1_P75),
    ],
)
def test_bce(logits, target, expected):
    assert bce_loss(logits, target).item() == pytest.approx(expected, abs=1e-6)


def test_partial_bce_skips_ambiguous_soft_values():
    logits, target = row(0.0, 0.0, LN3, LN3), row(0.05, 0.5, 1.0, 0.95)
    confident = confident_pixels(target, low=0.1, high=0.9, band_px=0)
    assert confident.flatten().tolist() == [True, False, True, True]
    bce_095 = 0.95 * BCE_T1_P75 + 0.05 * math.log(4.0)
    expected = (LN2 + BCE_T1_P75 + bce_095) / 3
    assert partial_bce_loss(logits, target, confident).item() == pytest.approx(expected, abs=1e-6)
    assert PartialBCELoss(0.1, 0.9, 0)(logits, target).item() == pytest.approx(expected, abs=1e-6)


def test_partial_bce_with_nothing_confident_is_zero():
    assert partial_bce_loss(row(3.0), row(0.5), torch.zeros(1, 1, 1, 1, dtype=torch.bool)).item() == 0.0


def _square(size: int, start: int, stop: int) -> torch.Tensor:
    mask = torch.zeros(1, 1, size, size)
    mask[..., start:stop, start:stop] = 1.0
    return mask


def test_band_around_the_outline_is_not_confident():
    # 3x3 object in a 7x7 image; band 1 px: dilation is 5x5, erosion the centre pixel only.
    confident = confident_pixels(_square(7, 2, 5), band_px=1)[0, 0]
    expected = torch.ones(7, 7, dtype=torch.bool)
    expected[1:6, 1:6] = False
    expected[3, 3] = True
    assert torch.equal(confident, expected)
    assert int(confident.sum()) == 25


@pytest.mark.parametrize(
    ("mask", "radius", "edge_pixels"),
    [
        (_square(7, 2, 5), 1, 5 * 5 - 1),  # dilation 5x5 minus erosion (the centre pixel)
        (_square(9, 3, 6), 2, 7 * 7),  # dilation 7x7; a 5x5 window erodes the 3x3 square away
        (torch.ones(1, 1, 4, 4), 1, 0),  # outside counts as foreground: no edge at the image border
        (torch.zeros(1, 1, 4, 4), 1, 0),
    ],
)
def test_mask_edges(mask, radius, edge_pixels):
    edges = mask_edges(mask, radius)
    assert set(edges.unique().tolist()) <= {0.0, 1.0}
    assert int(edges.sum()) == edge_pixels


@pytest.mark.parametrize(
    ("logits", "target", "eps", "expected"),
    [
        (torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]), 0.0, 0.8),  # 1 - 0.5 / 2.5
        (torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]), 1.0, 1 - 1.5 / 3.5),
        (torch.zeros(2, 1, 2, 2), torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 0.0], [0.0, 0.0]]]]), 1.0,
         ((1 - 1.5 / 3.5) + (1 - 1 / 3)) / 2),  # per image, then averaged
        (torch.full((1, 1, 2, 2), 50.0), torch.ones(1, 1, 2, 2), 0.0, 0.0),
    ],
)
def test_iou_loss(logits, target, eps, expected):
    assert iou_loss(logits, target, eps).item() == pytest.approx(expected, abs=1e-6)


def test_edge_loss_is_class_balanced():
    logits, target = row(LN3, 0.0, 0.0, -LN3), row(1.0, 0.0, 0.0, 0.0)
    # weights: edge pixel 3/4, others 1/4 -> (0.75 b0 + 0.25 (b1 + b2 + b3)) / 1.5
    expected = (0.75 * BCE_T1_P75 + 0.25 * (2 * LN2 + BCE_T1_P75)) / 1.5
    assert edge_loss(logits, target).item() == pytest.approx(expected, abs=1e-6)
    assert edge_loss(row(0.0, 0.0), row(0.0, 0.0)).item() == pytest.approx(LN2, abs=1e-6)  # one class: plain BCE


def test_total_is_the_weighted_sum_of_parts():
    torch.manual_seed(0)
    logits, edge_logits = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    target = _square(8, 2, 6).repeat(2, 1, 1, 1)
    total, parts = SODLoss(LossWeights())(logits, target, edge_logits)
    assert set(parts) == {"bce", "partial_bce", "iou", "edge"}
    assert total.item() == pytest.approx(sum(parts.values()), abs=1e-5)
    weighted, parts = SODLoss(LossWeights(bce=2.0, partial_bce=0.0, iou=0.5, edge=3.0))(logits, target, None)
    assert "edge" not in parts
    assert weighted.item() == pytest.approx(2 * parts["bce"] + 0.5 * parts["iou"], abs=1e-5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bce_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3)), "bce_loss: logits"),
        (lambda: iou_loss(torch.zeros(2, 2), torch.zeros(2, 2)), "iou_loss: logits"),
        (lambda: confident_pixels(torch.zeros(1, 1, 2, 2), low=0.9, high=0.1), "need 0 <= low < high"),
    ],
)
def test_bad_inputs_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
