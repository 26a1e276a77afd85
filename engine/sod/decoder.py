"""DEDecoder: progressive top-down decoding with dynamic upsampling and an edge-preserving branch.

Boxes of the figure, in order::

    C2..C5 --lateral 1x1--> L2..L5            (width channels each)
    D5 = L5;  D_i = fuse(L_i + up2(D_{i+1}))  for i = 4, 3, 2   (up2: dynamic or bilinear)
    edge branch: E = conv(cat(L2, D2)) -> edge logits (stride 4)     (optional)
    head: H = conv(cat(D2, E)) -> up4 -> 1x1 -> saliency logits (full size)      final_upsample="features"
          H = conv(cat(D2, E)) -> 1x1 -> logits (stride 4) -> up4 guided by H     final_upsample="logits"

With ``side_outputs``, 1x1 heads on D5, D4 and D3 give coarse saliency logits (bilinearly resized to
the input) during training only, for deep supervision: every level gets a direct training signal,
which speeds up training from scratch.

``final_upsample="logits"`` samples the one-channel logit map with offsets predicted from ``H``
instead of upsampling all ``width`` channels of ``H`` to full size: the same content-aware boundary
placement at a fraction of the cost (the full-size ``grid_sample`` dominated a CPU training step).

The edge branch sees the shallow, detailed C2 features; its features flow into the saliency head, so
supervising it with label edges sharpens object boundaries.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from engine.sod.upsample import make_upsample


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """``kernel_size`` conv (same padding, no bias) + BatchNorm + ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _match(features: torch.Tensor, size_hw: Sequence[int]) -> torch.Tensor:
    """Resize to ``size_hw`` when odd input sizes left a one-pixel difference (no-op otherwise)."""
    if tuple(features.shape[-2:]) == tuple(size_hw):
        return features
    return F.interpolate(features, size=tuple(size_hw), mode="bilinear", align_corners=False)


class DEDecoder(nn.Module):
    """Decode ``[C2, C3, C4, C5]`` (strides 4..32) into saliency logits and edge logits.

    Args:
        in_channels: channels of the four backbone maps.
        width: decoder channels at every level (divisible by ``groups``).
        upsample: ``"dynamic"`` (learned sampling offsets) or ``"bilinear"`` (ablation).
        edge_branch: build the edge-preserving branch (``False`` for the ablation).
        groups: offset groups of the dynamic upsamplers.
        final_upsample: ``"features"`` (upsample the head features, then 1x1) or ``"logits"``
            (1x1 first, then upsample the logits with offsets from the head features).
        side_outputs: build the deep-supervision heads on D5, D4, D3 (used in training mode only).
    """

    def __init__(self, in_channels: Sequence[int], width: int = 64, upsample: str = "dynamic",
                 edge_branch: bool = True, groups: int = 4, final_upsample: str = "features",
                 side_outputs: bool = False):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"DEDecoder needs 4 feature maps (strides 4..32), got channels {list(in_channels)}")
        if final_upsample not in ("features", "logits"):
            raise ValueError(f"final_upsample must be 'features' or 'logits', got {final_upsample!r}")
        self.upsample_kind, self.has_edge_branch, self.final_upsample = upsample, edge_branch, final_upsample
        self.lateral = nn.ModuleList(conv_bn_relu(c, width, 1) for c in in_channels)
        self.up = nn.ModuleList(make_upsample(upsample, width, 2, groups) for _ in range(3))
        self.fuse = nn.ModuleList(conv_bn_relu(width, width) for _ in range(3))
        if edge_branch:
            self.edge = nn.Sequential(conv_bn_relu(2 * width, width), conv_bn_relu(width, width))
            self.edge_out = nn.Conv2d(width, 1, 1)
        self.head = conv_bn_relu(2 * width if edge_branch else width, width)
        if final_upsample == "features":
            self.final_up = make_upsample(upsample, width, 4, groups)
        else:
            self.final_up = make_upsample(upsample, 1, 4, 1, guide_channels=width)
        self.out = nn.Conv2d(width, 1, 1)
        self.side = nn.ModuleList(nn.Conv2d(width, 1, 1) for _ in range(3)) if side_outputs else None

    def forward(self, features: Sequence[torch.Tensor], size_hw: Sequence[int]
                ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, ...]]:
        """Features -> ``(saliency logits (B, 1, H, W), edge logits (B, 1, H, W) or None, side logits)``
        at ``size_hw``; side logits (D5, D4, D3, each ``(B, 1, H, W)``) only in training mode, else ``()``."""
        if len(features) != 4:
            raise ValueError(f"DEDecoder: expected 4 feature maps, got {len(features)}")
        lateral = [layer(f) for layer, f in zip(self.lateral, features, strict=True)]
        decoded = lateral[3]
        sides = []
        for level in (2, 1, 0):  # C4, C3, C2
            step = 2 - level  # up/fuse modules ordered coarse to fine
            if self.side is not None and self.training:
                sides.append(_match(self.side[step](decoded), size_hw))
            up = _match(self.up[step](decoded), lateral[level].shape[-2:])
            decoded = self.fuse[step](lateral[level] + up)
        edge_logits = None
        head_in = decoded
        if self.has_edge_branch:
            edge_features = self.edge(torch.cat([lateral[0], decoded], dim=1))
            edge_logits = _match(self.edge_out(edge_features), size_hw)
            head_in = torch.cat([decoded, edge_features], dim=1)
        head = self.head(head_in)
        if self.final_upsample == "features":
            logits = self.out(_match(self.final_up(head), size_hw))
        else:
            logits = _match(self.final_up(self.out(head), guide=head), size_hw)
        return logits, edge_logits, tuple(sides)
