"""Losses of unsupervised refinement: (PCL-)saliency distilling, multi-scale consistency, IoU, BCE.

Each is a function doing the work plus a thin ``nn.Module``. ``probs`` are sigmoid outputs in [0, 1],
``logits`` are pre-sigmoid; all maps are ``(B, 1, H, W)`` float.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.sod.losses import bce_loss, soft_iou_loss  # noqa: F401  (bce_loss shared with the saliency model)


def _check_map(name: str, x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must be (B, 1, H, W), got {tuple(x.shape)}")


def pcl_threshold(epoch: float, epochs: int, start: float = 0.2, slope: float = 0.6) -> float:
    """The curriculum threshold ``p = max(0, start - slope * epoch / epochs)`` (paper: 0.2, 0.6).

    ``epoch`` counts from 0 and may be fractional (progress within training); with the defaults
    hard pixels are masked only during the first third of training.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    return max(0.0, start - slope * float(epoch) / epochs)


def hard_pixel_mask(probs: torch.Tensor, p: float) -> torch.Tensor:
    """M: 0 where ``|S - 0.5| < p`` (hard, uncertain pixels), 1 elsewhere; same shape, no gradient."""
    return ((probs.detach() - 0.5).abs() >= p).to(probs.dtype)


def saliency_distilling_loss(probs: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Plain saliency distilling: ``0.5 - mean(|S - 0.5|)`` (with ``power`` 1; ``0.5**power - ...`` else).

    Pushes every pixel away from 0.5; it is symmetric in S and 1 - S (the SCE flips the sign later).
    """
    _check_map("probs", probs)
    return 0.5**power - (probs - 0.5).abs().pow(power).mean()


def pcl_sd_loss(probs: torch.Tensor, p: float, power: float = 1.0) -> torch.Tensor:
    """PCL-SD: ``0.5 - mean(|M * S - 0.5|)`` with M from :func:`hard_pixel_mask` (the paper's formula).

    A masked pixel contributes ``0.5 - |0 - 0.5| = 0`` and no gradient, which equals the code's
    weighting ``w * (0.5 - |S - 0.5|)`` with ``w = M``. The mean runs over all N pixels.
    """
    _check_map("probs", probs)
    mask = hard_pixel_mask(probs, p)
    return 0.5**power - ((mask * probs - 0.5).abs().pow(power) * mask + (1 - mask) * 0.5**power).mean()


def multiscale_consistency_loss(probs: torch.Tensor, probs_other_scale: torch.Tensor) -> torch.Tensor:
    """MSE between predictions of the same images at two input scales (the second resized to the first)."""
    _check_map("probs", probs)
    _check_map("probs_other_scale", probs_other_scale)
    if probs_other_scale.shape[-2:] != probs.shape[-2:]:
        probs_other_scale = F.interpolate(probs_other_scale, size=probs.shape[-2:], mode="bilinear", align_corners=False)
    return F.mse_loss(probs, probs_other_scale)


def iou_loss(probs: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Soft IoU loss ``1 - sum(S T) / sum(S + T - S T)`` per image, averaged over the batch."""
    _check_map("probs", probs)
    if target.shape != probs.shape:
        raise ValueError(f"target {tuple(target.shape)} must match probs {tuple(probs.shape)}")
    return soft_iou_loss(probs, target, eps)


class SaliencyDistillingLoss(nn.Module):
    def __init__(self, power: float = 1.0):
        super().__init__()
        self.power = power

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return saliency_distilling_loss(probs, self.power)


class PCLSDLoss(nn.Module):
    """PCL-SD with the curriculum schedule: ``forward(probs, epoch, epochs)``."""

    def __init__(self, start: float = 0.2, slope: float = 0.6, power: float = 1.0):
        super().__init__()
        self.start, self.slope, self.power = start, slope, power

    def forward(self, probs: torch.Tensor, epoch: float, epochs: int) -> torch.Tensor:
        return pcl_sd_loss(probs, pcl_threshold(epoch, epochs, self.start, self.slope), self.power)


class MultiScaleConsistencyLoss(nn.Module):
    def forward(self, probs: torch.Tensor, probs_other_scale: torch.Tensor) -> torch.Tensor:
        return multiscale_consistency_loss(probs, probs_other_scale)


class IoULoss(nn.Module):
    def forward(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return iou_loss(probs, target)


class BCELoss(nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bce_loss(logits, target)


class DetectorLoss(nn.Module):
    """Stage-2 supervision: ``iou_w * IoU + bce_w * BCE`` on the main scale + ``ms_w * consistency``."""

    def __init__(self, iou_weight: float = 1.0, bce_weight: float = 0.0, consistency_weight: float = 1.0):
        super().__init__()
        self.iou_weight, self.bce_weight, self.consistency_weight = iou_weight, bce_weight, consistency_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor, logits_other_scale: torch.Tensor | None = None) -> torch.Tensor:
        probs = torch.sigmoid(logits)
        loss = logits.new_zeros(())
        if self.iou_weight:
            loss = loss + self.iou_weight * iou_loss(probs, target)
        if self.bce_weight:
            loss = loss + self.bce_weight * bce_loss(logits, target)
        if self.consistency_weight and logits_other_scale is not None:
            loss = loss + self.consistency_weight * multiscale_consistency_loss(probs, torch.sigmoid(logits_other_scale))
        return loss
