"""R_pri: the real-time pixel-adaptive refiner (PAR, from AFA, CVPR 2022), vectorised in torch.

For each pixel i and each of its 8 neighbours j at every dilation d (32 neighbours for {1, 2, 4, 8}),

    a_ij = softmax_j( -mean_c( |I_ic - I_jc| / (std_j(I_jc) + eps) / w1 )^2 )
         + w2 * softmax_j( -(|p_i - p_j| / std_j |p_i - p_j| / w1)^2 )

and the mask is propagated ``iterations`` times as ``m_i <- sum_j a_ij m_j``, then max-normalised per
image. The affinity is computed once from the image; it is neither a CRF nor a guided filter.
Neighbours outside the image repeat the border pixel (replicate padding), as in AFA.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
EPS = 1e-8


def dilated_neighbours(x: torch.Tensor, dilations: tuple[int, ...]) -> torch.Tensor:
    """The 8 neighbours of every pixel at each dilation: ``(B, C, H, W)`` -> ``(B, C, 8 * len(d), H, W)``."""
    _, _, height, width = x.shape
    pad = max(dilations)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    shifted = [
        padded[:, :, pad + dy * d : pad + dy * d + height, pad + dx * d : pad + dx * d + width]
        for d in dilations
        for dy, dx in _OFFSETS
    ]
    return torch.stack(shifted, dim=2)


def par_affinity(image: torch.Tensor, dilations: tuple[int, ...] = (1, 2, 4, 8), temperature: float = 0.3,
                 pos_weight: float = 0.01) -> torch.Tensor:
    """Affinity of every pixel to its dilated neighbours: ``(B, 1, K, H, W)``, K = 8 * len(dilations).

    ``image``: ``(B, C, H, W)`` float (any consistent scale; distances are divided by the local std).
    Each pixel's weights sum to ``1 + pos_weight``.
    """
    neighbours = dilated_neighbours(image, dilations)
    colour = (neighbours - image.unsqueeze(2)).abs() / (neighbours.std(dim=2, keepdim=True) + EPS)
    colour_aff = -(colour / temperature).pow(2).mean(dim=1, keepdim=True)
    distances = torch.tensor(
        [d * math.hypot(dy, dx) for d in dilations for dy, dx in _OFFSETS], dtype=image.dtype, device=image.device
    )
    pos_aff = -(distances / (distances.std() + EPS) / temperature).pow(2)
    pos_soft = torch.softmax(pos_aff, dim=0).view(1, 1, -1, 1, 1)
    return torch.softmax(colour_aff, dim=2) + pos_weight * pos_soft


def pixel_adaptive_refine(image: torch.Tensor, mask: torch.Tensor, dilations: tuple[int, ...] = (1, 2, 4, 8),
                          iterations: int = 6, temperature: float = 0.3, pos_weight: float = 0.01,
                          normalize: bool = True) -> torch.Tensor:
    """Refine ``mask`` along the edges of ``image``.

    Args:
        image: ``(B, C, H, W)`` float (RGB in [0, 1] or normalised; C >= 1).
        mask: ``(B, 1, h, w)`` float in [0, 1]; resized bilinearly to ``(H, W)`` when it differs.
        normalize: divide each refined map by its maximum (the USOD code does), so it stays in [0, 1].

    Returns:
        ``(B, 1, H, W)`` float in [0, 1].
    """
    if image.ndim != 4 or mask.ndim != 4 or mask.shape[1] != 1 or image.shape[0] != mask.shape[0]:
        raise ValueError(f"PAR expects image (B, C, H, W) and mask (B, 1, H, W), got {tuple(image.shape)} and {tuple(mask.shape)}")
    image, mask = image.float(), mask.float()
    if mask.shape[-2:] != image.shape[-2:]:
        mask = F.interpolate(mask, size=image.shape[-2:], mode="bilinear", align_corners=False)
    affinity = par_affinity(image, tuple(int(d) for d in dilations), temperature, pos_weight)
    for _ in range(iterations):
        mask = (dilated_neighbours(mask, tuple(int(d) for d in dilations)) * affinity).sum(dim=2)
    if normalize:
        mask = mask / mask.amax(dim=(1, 2, 3), keepdim=True).clamp_min(EPS)
    return mask.clamp(0.0, 1.0)


class PixelAdaptiveRefiner(nn.Module):
    """Thin module around :func:`pixel_adaptive_refine` (no learnable parameters)."""

    def __init__(self, dilations: tuple[int, ...] = (1, 2, 4, 8), iterations: int = 6, temperature: float = 0.3,
                 pos_weight: float = 0.01, normalize: bool = True):
        super().__init__()
        self.dilations = tuple(int(d) for d in dilations)
        self.iterations, self.temperature, self.pos_weight, self.normalize = iterations, temperature, pos_weight, normalize

    @classmethod
    def from_params(cls, params) -> PixelAdaptiveRefiner:
        """From :class:`engine.refine.params.PARParams`."""
        return cls(params.dilations, params.iterations, params.temperature, params.pos_weight)

    @torch.no_grad()
    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return pixel_adaptive_refine(image, mask, self.dilations, self.iterations, self.temperature,
                                     self.pos_weight, self.normalize)
