"""SPR: self-rectifying pseudo-label refinement, and the disk-backed bank of soft labels it updates.

``G_ref = l1 * R_pri + l2 * R_post + l3 * G_pre``, per sample, then max-normalised (as in the USOD
code). R_post is the detector's prediction, R_pri the pixel-adaptive refinement of that prediction
(the code's choice: ``PAR(image, prediction)``), G_pre the current label.

The label bank is a ``uint8`` memory-mapped array ``(N, S, S)`` on disk, so a 260k-image set needs
no more RAM than a batch; values are labels in [0, 1] quantised to 1/255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.refine.par import PixelAdaptiveRefiner


def spr_update(r_pri: torch.Tensor, r_post: torch.Tensor, g_pre: torch.Tensor,
               weights: tuple[float, float, float] = (0.2, 0.6, 0.2), eps: float = 1e-8) -> torch.Tensor:
    """One SPR step: weighted sum, then each sample divided by its maximum.

    All inputs ``(B, 1, H, W)`` float in [0, 1]; returns the same shape in [0, 1]. An all-zero
    result stays zero.
    """
    if not (r_pri.shape == r_post.shape == g_pre.shape) or r_pri.ndim != 4:
        raise ValueError(f"SPR inputs must share a (B, 1, H, W) shape, got {tuple(r_pri.shape)}, "
                         f"{tuple(r_post.shape)}, {tuple(g_pre.shape)}")
    l1, l2, l3 = weights
    merged = l1 * r_pri + l2 * r_post + l3 * g_pre
    return (merged / merged.amax(dim=(1, 2, 3), keepdim=True).clamp_min(eps)).clamp(0.0, 1.0)


class SelfRectifier(nn.Module):
    """SPR with its prior refiner: ``forward(image, probs, labels) -> refined labels``."""

    def __init__(self, refiner: PixelAdaptiveRefiner, weights: tuple[float, float, float] = (0.2, 0.6, 0.2)):
        super().__init__()
        self.refiner, self.weights = refiner, tuple(weights)

    @torch.no_grad()
    def forward(self, image: torch.Tensor, probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``image`` ``(B, 3, H, W)``; ``probs``, ``labels`` ``(B, 1, H, W)`` in [0, 1]."""
        r_pri = self.refiner(image, probs) if self.weights[0] else torch.zeros_like(probs)
        return spr_update(r_pri, probs, labels, self.weights)


class LabelBank:
    """Soft labels of N images at ``size x size``, stored as a ``uint8`` memmap file (``path``)."""

    def __init__(self, path: str | Path, count: int, size: int, mode: str = "w+"):
        if count < 1 or size < 1:
            raise ValueError(f"label bank needs count >= 1 and size >= 1, got {count}, {size}")
        self.path, self.count, self.size = Path(path), count, size
        if mode == "w+":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_file() or self.path.stat().st_size != count * size * size:
            raise ValueError(f"{self.path}: label bank missing or not {count} x {size} x {size} bytes")
        self.array = np.memmap(self.path, dtype=np.uint8, mode=mode, shape=(count, size, size))

    @classmethod
    def open(cls, path: str | Path, count: int, size: int, writable: bool = False) -> LabelBank:
        return cls(path, count, size, mode="r+" if writable else "r")

    def get(self, indices: torch.Tensor | list[int]) -> torch.Tensor:
        """Labels of ``indices`` as ``(B, 1, S, S)`` float in [0, 1]."""
        idx = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(self.array[idx].astype(np.float32) / 255.0).unsqueeze(1)

    def set(self, indices: torch.Tensor | list[int], labels: torch.Tensor) -> None:
        """Store ``(B, 1, S, S)`` labels in [0, 1] at ``indices``."""
        if labels.ndim != 4 or tuple(labels.shape[-2:]) != (self.size, self.size):
            raise ValueError(f"labels must be (B, 1, {self.size}, {self.size}), got {tuple(labels.shape)}")
        values = (labels.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()[:, 0]
        self.array[np.asarray(indices, dtype=np.int64)] = values

    def flush(self) -> None:
        self.array.flush()

    def copy_to(self, path: str | Path) -> LabelBank:
        """A new bank file with the same contents (the previous version is never overwritten)."""
        other = LabelBank(path, self.count, self.size)
        other.array[:] = self.array[:]
        other.flush()
        return other
