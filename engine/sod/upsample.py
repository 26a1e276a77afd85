"""Dynamic upsampling by learned point sampling (in the spirit of DySample, our own implementation).

For an input ``(B, C, H, W)`` and scale ``s``, a 1x1 convolution predicts ``2 * groups * s^2`` offset
channels per input pixel; pixel shuffle turns them into one ``(dx, dy)`` per output pixel and group,
scaled by ``offset_scale`` (0.25: neighbouring sampling points cannot cross). They are added to the
regular sub-pixel grid (the source positions of align_corners=False bilinear upsampling) and each
channel group is read with ``grid_sample``. With zero offsets it equals bilinear upsampling.

Precision: sampling coordinates are computed and used in float32 whatever the feature dtype or an
active autocast (a bf16 grid has ~8 significant bits: at 64 px it would sample up to a quarter
pixel off). The offset convolution and ``grid_sample`` run in float32; only the sampled values are
cast back to the features' dtype.

The offsets may be predicted from other features than the ones sampled (``guide``): the DEDecoder
upsamples its one-channel logits with offsets predicted from its head features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def regular_grid(height: int, width: int, scale: int, device=None, dtype=None) -> torch.Tensor:
    """Source coordinates ``(2, sH, sW)`` (x then y, input pixel units) of align_corners=False upsampling.

    Output pixel ``i`` reads input position ``(i + 0.5) / s - 0.5``.
    """
    ys = (torch.arange(height * scale, device=device, dtype=dtype) + 0.5) / scale - 0.5
    xs = (torch.arange(width * scale, device=device, dtype=dtype) + 0.5) / scale - 0.5
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y])


def sample_at(features: torch.Tensor, coords: torch.Tensor, groups: int) -> torch.Tensor:
    """Bilinearly read ``features`` ``(B, C, H, W)`` at ``coords`` ``(B, groups, 2, h, w)`` (x, y in pixels).

    Channel group ``g`` is read at ``coords[:, g]``; positions outside clamp to the border.
    Returns ``(B, C, h, w)``.
    The grid is built and sampled in float32 (also under autocast); the result has ``features``' dtype.
    """
    b, c, height, width = features.shape
    out_h, out_w = coords.shape[-2:]
    coords = coords.float()
    norm = coords.new_tensor([2.0 / width, 2.0 / height]).view(1, 1, 2, 1, 1)
    grid = (coords + 0.5) * norm - 1.0  # align_corners=False convention
    grid = grid.permute(0, 1, 3, 4, 2).reshape(b * groups, out_h, out_w, 2)
    grouped = features.float().reshape(b * groups, c // groups, height, width)
    with torch.autocast(features.device.type, enabled=False):
        sampled = F.grid_sample(grouped, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.reshape(b, c, out_h, out_w).to(features.dtype)


class DynamicUpsample(nn.Module):
    """Content-aware ``scale``x upsampling: ``(B, C, H, W)`` -> ``(B, C, sH, sW)``.

    Args:
        channels: ``C``; must be divisible by ``groups``.
        scale: integer upsampling factor (2 between decoder levels, 4 for the last step).
        groups: channel groups sharing one set of sampling offsets.
        offset_scale: factor on the predicted offsets (input pixel units); 0.25 as in DySample.
        guide_channels: channels of the map the offsets are predicted from (default: ``channels``,
            the sampled map itself); see ``forward``'s ``guide``.
    """

    def __init__(self, channels: int, scale: int = 2, groups: int = 4, offset_scale: float = 0.25,
                 guide_channels: int | None = None):
        super().__init__()
        if scale < 1 or channels % groups:
            raise ValueError(f"DynamicUpsample: need scale >= 1 and channels ({channels}) divisible by groups ({groups})")
        self.channels, self.scale, self.groups, self.offset_scale = channels, scale, groups, offset_scale
        self.offset = nn.Conv2d(guide_channels or channels, 2 * groups * scale * scale, kernel_size=1)
        nn.init.normal_(self.offset.weight, std=1e-3)
        nn.init.zeros_(self.offset.bias)

    def offsets(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted offsets ``(B, groups, 2, sH, sW) float32`` in input pixel units (computed in float32)."""
        b, _, height, width = features.shape
        with torch.autocast(features.device.type, enabled=False):
            raw = F.conv2d(features.float(), self.offset.weight.float(), self.offset.bias.float())
            raw = F.pixel_shuffle(raw * self.offset_scale, self.scale)
        return raw.reshape(b, self.groups, 2, height * self.scale, width * self.scale)

    def forward(self, features: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C, sH, sW)``; offsets from ``guide`` ``(B, guide_channels, H, W)`` if given."""
        if features.ndim != 4 or features.shape[1] != self.channels:
            raise ValueError(f"DynamicUpsample: expected (B, {self.channels}, H, W), got {tuple(features.shape)}")
        guide = features if guide is None else guide
        if guide.ndim != 4 or guide.shape[0] != features.shape[0] or guide.shape[-2:] != features.shape[-2:] \
                or guide.shape[1] != self.offset.in_channels:
            raise ValueError(f"DynamicUpsample: guide must be (B, {self.offset.in_channels}, H, W) like the "
                             f"features {tuple(features.shape)}, got {tuple(guide.shape)}")
        height, width = features.shape[-2:]
        base = regular_grid(height, width, self.scale, features.device, torch.float32)
        coords = base.view(1, 1, 2, *base.shape[-2:]) + self.offsets(guide)
        return sample_at(features, coords, self.groups)


class BilinearUpsample(nn.Module):
    """Plain ``scale``x bilinear upsampling (align_corners=False), the ablation's baseline."""

    def __init__(self, channels: int = 0, scale: int = 2, **_: object):
        super().__init__()
        self.scale = scale

    def forward(self, features: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        return F.interpolate(features, scale_factor=self.scale, mode="bilinear", align_corners=False)


def make_upsample(kind: str, channels: int, scale: int, groups: int = 4, guide_channels: int | None = None) -> nn.Module:
    """``"dynamic"`` -> :class:`DynamicUpsample`, ``"bilinear"`` -> :class:`BilinearUpsample`."""
    if kind == "dynamic":
        return DynamicUpsample(channels, scale, groups, guide_channels=guide_channels)
    if kind == "bilinear":
        return BilinearUpsample(channels, scale)
    raise ValueError(f"upsample must be 'dynamic' or 'bilinear', got {kind!r}")
