"""Saliency cues -> initial pseudo-labels: sign flip, Otsu threshold, pixel-adaptive refinement.

The USOD code thresholds the cue map with Otsu, then applies a dense CRF and a median filter; we
use the pixel-adaptive refiner (PAR) instead of the CRF (no CRF package needed) and keep the median
filter as an option.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from engine.refine.par import PixelAdaptiveRefiner


def corner_saliency(probs: torch.Tensor, corner_frac: float = 0.1) -> torch.Tensor:
    """Mean value of the four corner patches: ``(B, 1, H, W)`` -> ``(B, 4)``."""
    height, width = probs.shape[-2:]
    ch, cw = max(1, int(round(height * corner_frac))), max(1, int(round(width * corner_frac)))
    patches = [probs[..., :ch, :cw], probs[..., :ch, -cw:], probs[..., -ch:, :cw], probs[..., -ch:, -cw:]]
    return torch.stack([p.mean(dim=(1, 2, 3)) for p in patches], dim=1)


def flip_if_background(probs: torch.Tensor, corner_frac: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip ``S -> 1 - S`` for images where most (>= 3 of 4) corners come out salient.

    ``probs``: ``(B, 1, H, W)`` in [0, 1]. Returns the corrected maps and a ``(B,)`` bool of flips.
    Saliency distilling is symmetric in S and 1 - S, so the sign has to be fixed afterwards.
    """
    flipped = (corner_saliency(probs, corner_frac) > 0.5).sum(dim=1) >= 3
    out = torch.where(flipped.view(-1, 1, 1, 1), 1.0 - probs, probs)
    return out, flipped


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of a map in [0, 1] (returned in [0, 1]); 0.5 for a constant map."""
    u8 = np.clip(np.asarray(values, dtype=np.float32) * 255.0, 0, 255).astype(np.uint8)
    if u8.min() == u8.max():
        return 0.5
    threshold, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(threshold) / 255.0


def median_filter(mask: np.ndarray, size: int) -> np.ndarray:
    """Median filter of an ``(H, W)`` float mask in [0, 1] with an odd ``size`` (0 or 1 = off)."""
    if size <= 1:
        return mask
    u8 = np.clip(mask * 255.0, 0, 255).astype(np.uint8)
    return cv2.medianBlur(u8, size | 1).astype(np.float32) / 255.0


def cues_to_labels(image: torch.Tensor, cues: torch.Tensor, refiner: PixelAdaptiveRefiner | None = None,
                   median: int = 0) -> torch.Tensor:
    """Initial pseudo-labels from cue maps: per-image Otsu -> PAR along image edges -> 0.5 -> median.

    Args:
        image: ``(B, 3, H, W)`` float, RGB in [0, 1].
        cues: ``(B, 1, H, W)`` float in [0, 1], foreground already salient (see ``flip_if_background``).
    Returns:
        ``(B, 1, H, W)`` float in {0, 1}.
    """
    if cues.ndim != 4 or cues.shape[1] != 1:
        raise ValueError(f"cues must be (B, 1, H, W), got {tuple(cues.shape)}")
    thresholds = torch.tensor([otsu_threshold(c[0].cpu().numpy()) for c in cues], device=cues.device)
    binary = (cues > thresholds.view(-1, 1, 1, 1)).float()
    if refiner is not None:
        binary = (refiner(image, binary) > 0.5).float()
    if median > 1:
        smoothed = [median_filter(b[0].cpu().numpy(), median) for b in binary]
        binary = (torch.from_numpy(np.stack(smoothed))[:, None].to(binary.device) > 0.5).float()
    return binary
