"""Losses of the saliency model: BCE, partial BCE, IoU, edge; each a function plus a thin module.

Conventions: ``logits`` are raw scores ``(B, 1, H, W)``; ``target`` is the label ``(B, 1, H, W) float
in [0, 1]`` (hard 0/1 from RLE masks, or soft); every loss returns a scalar (mean over the batch).

Partial BCE rule (``confident_pixels``): a pixel is confident when its label value is ``<= low`` or
``>= high`` AND it lies more than ``band_px`` pixels (Chebyshev distance) from the label's boundary
(the boundary of ``target >= 0.5``). Soft labels lose their ambiguous values; hard labels lose a band
of ``band_px`` pixels on each side of the object outline, where pseudo-labels are least reliable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _check(logits: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if logits.shape != target.shape or logits.ndim != 4:
        raise ValueError(f"{name}: logits {tuple(logits.shape)} and target {tuple(target.shape)} must both be (B, 1, H, W)")


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary/greyscale dilation of ``(B, 1, H, W)`` with a ``(2r+1)^2`` square (max filter)."""
    return F.max_pool2d(mask, 2 * radius + 1, stride=1, padding=radius) if radius > 0 else mask


def erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Erosion with a ``(2r+1)^2`` square; outside the image counts as foreground (no border artefact)."""
    return -dilate(-mask, radius)


def mask_edges(target: torch.Tensor, radius: int = 1) -> torch.Tensor:
    """Edge map ``(B, 1, H, W) float in {0, 1}``: dilation minus erosion of ``target >= 0.5``.

    With ``radius=1`` the band is one pixel on each side of the outline (2 px wide).
    """
    binary = (target >= 0.5).to(target.dtype)
    return dilate(binary, radius) - erode(binary, radius)


def confident_pixels(target: torch.Tensor, low: float = 0.1, high: float = 0.9, band_px: int = 2) -> torch.Tensor:
    """Boolean ``(B, 1, H, W)``: where partial BCE trusts the label (rule in the module docstring)."""
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"confident_pixels: need 0 <= low < high <= 1, got low={low}, high={high}")
    confident = (target <= low) | (target >= high)
    if band_px > 0:
        confident &= mask_edges(target, band_px) == 0
    return confident


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy over all pixels."""
    _check(logits, target, "bce_loss")
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def partial_bce_loss(logits: torch.Tensor, target: torch.Tensor, confident: torch.Tensor) -> torch.Tensor:
    """BCE averaged over the ``confident`` pixels only (0 when there are none)."""
    _check(logits, target, "partial_bce_loss")
    if confident.shape != target.shape:
        raise ValueError(f"partial_bce_loss: confident {tuple(confident.shape)} must match target {tuple(target.shape)}")
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    weight = confident.float()
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1.0)


def soft_iou_loss(probs: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - (sum(p t) + eps) / (sum(p + t - p t) + eps)`` per image, averaged; ``probs`` in [0, 1]."""
    inter = (probs * target).sum(dim=(1, 2, 3))
    union = (probs + target - probs * target).sum(dim=(1, 2, 3))
    return (1.0 - (inter + eps) / (union + eps)).mean()


def iou_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft IoU loss of ``sigmoid(logits)`` (see :func:`soft_iou_loss`)."""
    _check(logits, target, "iou_loss")
    return soft_iou_loss(torch.sigmoid(logits.float()), target.float(), eps)


def edge_loss(edge_logits: torch.Tensor, edge_target: torch.Tensor) -> torch.Tensor:
    """Class-balanced BCE (HED): edge pixels weigh ``n_neg / n``, the others ``n_pos / n``, per batch.

    The result is ``sum(w * bce) / sum(w)`` so it stays on the BCE scale whatever the edge density.
    """
    _check(edge_logits, edge_target, "edge_loss")
    target = edge_target.float()
    positive = target.sum()
    total = torch.tensor(float(target.numel()), device=target.device)
    weight = torch.where(target > 0.5, (total - positive) / total, positive / total)
    if float(weight.sum()) == 0.0:  # all pixels one class: plain BCE
        weight = torch.ones_like(target)
    per_pixel = F.binary_cross_entropy_with_logits(edge_logits.float(), target, reduction="none")
    return (weight * per_pixel).sum() / weight.sum()


class BCELoss(nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return bce_loss(logits, target)


class PartialBCELoss(nn.Module):
    """Partial BCE with the confidence rule of :func:`confident_pixels`."""

    def __init__(self, low: float = 0.1, high: float = 0.9, band_px: int = 2):
        super().__init__()
        self.low, self.high, self.band_px = low, high, band_px

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return partial_bce_loss(logits, target, confident_pixels(target, self.low, self.high, self.band_px))


class IoULoss(nn.Module):
    def __init__(self, eps: float = 1.0):
        super().__init__()
        self.eps = eps

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return iou_loss(logits, target, self.eps)


class EdgeLoss(nn.Module):
    """Edge loss against edges derived from the saliency label (``mask_edges(target, radius)``)."""

    def __init__(self, radius: int = 1):
        super().__init__()
        self.radius = radius

    def forward(self, edge_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return edge_loss(edge_logits, mask_edges(target, self.radius))


@dataclass(frozen=True)
class LossWeights:
    """Weights of the total loss (``train`` section of params.yaml) and the partial-BCE/edge rules."""

    bce: float = 1.0
    partial_bce: float = 1.0
    iou: float = 1.0
    edge: float = 1.0
    side: float = 0.0
    confident_low: float = 0.1
    confident_high: float = 0.9
    band_px: int = 2
    edge_radius: int = 1


class SODLoss(nn.Module):
    """Weighted sum ``bce + partial_bce + iou (+ edge when edge logits exist) (+ side)``; returns (total, parts).

    ``side`` is the mean over the deep-supervision logits of ``bce + iou`` (when any are given).
    """

    def __init__(self, weights: LossWeights = LossWeights()):
        super().__init__()
        self.weights = weights
        self.partial = PartialBCELoss(weights.confident_low, weights.confident_high, weights.band_px)
        self.edge = EdgeLoss(weights.edge_radius)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, edge_logits: torch.Tensor | None = None,
                side_logits: tuple[torch.Tensor, ...] = ()) -> tuple[torch.Tensor, dict[str, float]]:
        w = self.weights
        parts = {"bce": bce_loss(logits, target), "partial_bce": self.partial(logits, target), "iou": iou_loss(logits, target)}
        if edge_logits is not None:
            parts["edge"] = self.edge(edge_logits, target)
        if side_logits:
            parts["side"] = sum(bce_loss(s, target) + iou_loss(s, target) for s in side_logits) / len(side_logits)
        total = sum(getattr(w, name) * value for name, value in parts.items())
        return total, {name: float(value.detach()) for name, value in parts.items()}
