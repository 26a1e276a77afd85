"""Networks of unsupervised refinement: the saliency cue extractor (stage 1) and the two-stream
saliency detector (stage 2), both a backbone from :mod:`engine.backbones` plus the SCE decoder.

Decoder (as in the USOD code): C3, C4, C5 each -> 3x3 conv to 64 channels, GroupNorm, ReLU,
squeeze-excitation; upsampled to C3's size, concatenated, fused by two convolutions into one logit
map, upsampled to the input size. ``decoder.branches[-1]`` (the C5 branch) is where adapters attach.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engine.refine.cues import flip_if_background


class SqueezeExcitation(nn.Module):
    """Channel attention: ``x * sigmoid(W2 relu(W1 avgpool(x)))``."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.fc = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(F.adaptive_avg_pool2d(x, 1)))


def conv_block(in_channels: int, out_channels: int, kernel: int = 3) -> nn.Sequential:
    """conv -> GroupNorm -> ReLU."""
    groups = 8 if out_channels % 8 == 0 else 1
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
                         nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True))


class SaliencyDecoder(nn.Module):
    """C3, C4, C5 -> one saliency logit map at C3's resolution.

    ``centred`` (the SCE head, as in the USOD code): the fused features are centred on their
    per-image spatial mean and summed over channels, so the logits average zero over each image and
    distilling cannot collapse to a constant map. Otherwise a 1x1 convolution gives the logits.
    """

    def __init__(self, in_channels: tuple[int, int, int], width: int = 64, centred: bool = False):
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(conv_block(c, width), SqueezeExcitation(width)) for c in in_channels)
        self.fuse = nn.Sequential(conv_block(3 * width, width), SqueezeExcitation(width))
        self.centred = centred
        self.head = None if centred else nn.Conv2d(width, 1, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """``features``: ``[C3, C4, C5]`` -> ``(B, 1, h3, w3)`` logits."""
        size = features[0].shape[-2:]
        maps = [branch(f) for branch, f in zip(self.branches, features, strict=True)]
        maps = [m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps]
        fused = self.fuse(torch.cat(maps, dim=1))
        if self.head is not None:
            return self.head(fused)
        return (fused - fused.mean(dim=(2, 3), keepdim=True)).sum(dim=1, keepdim=True)


class SaliencyCueExtractor(nn.Module):
    """Stage 1: backbone + decoder; ``forward(images)`` -> ``(B, 1, H, W)`` logits at the input size.

    Trained with (PCL-)saliency distilling, which cannot tell foreground from background: use
    :meth:`cues` at inference, which flips maps whose corners come out salient.
    """

    def __init__(self, backbone: nn.Module, width: int = 64):
        super().__init__()
        self.backbone = backbone
        self.decoder = SaliencyDecoder(tuple(backbone.channels[1:4]), width, centred=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: ``(B, 3, H, W)`` float RGB in [0, 1]."""
        features = self.backbone(images)[1:4]
        logits = self.decoder(features)
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    @torch.no_grad()
    def cues(self, images: torch.Tensor, corner_frac: float = 0.1) -> torch.Tensor:
        """Saliency cue maps ``(B, 1, H, W)`` in [0, 1], foreground salient."""
        probs, _ = flip_if_background(torch.sigmoid(self(images)), corner_frac)
        return probs


class TwoStreamDetector(nn.Module):
    """Stage 2: RGB stream + second stream (depth / thermal / flow, or RGB again), modality-agnostic.

    The streams' C3-C5 features are summed level by level and decoded by one SCE decoder.
    ``forward(images, second)`` -> ``(B, 1, H, W)`` logits; ``second`` is ``(B, 3, H, W)`` in [0, 1]
    (single-channel modalities repeated to 3 channels) or ``None`` (the RGB image again).
    """

    def __init__(self, rgb_backbone: nn.Module, second_backbone: nn.Module, width: int = 64):
        super().__init__()
        if tuple(rgb_backbone.channels) != tuple(second_backbone.channels):
            raise ValueError(f"both streams need the same channels, got {rgb_backbone.channels} and {second_backbone.channels}")
        self.backbone = rgb_backbone
        self.second_backbone = second_backbone
        self.decoder = SaliencyDecoder(tuple(rgb_backbone.channels[1:4]), width)
        # Start at a foreground prior of ~20% instead of 50% (RetinaNet-style), which shortens the
        # initial plateau of the IoU loss.
        nn.init.constant_(self.decoder.head.bias, math.log(0.2 / 0.8))

    def forward(self, images: torch.Tensor, second: torch.Tensor | None = None) -> torch.Tensor:
        second = images if second is None else second
        if second.shape != images.shape:
            raise ValueError(f"second stream {tuple(second.shape)} must match images {tuple(images.shape)}")
        rgb = self.backbone(images)[1:4]
        other = self.second_backbone(second)[1:4]
        logits = self.decoder([a + b for a, b in zip(rgb, other, strict=True)])
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [*self.backbone.parameters(), *self.second_backbone.parameters()]


def build_cue_extractor(backbone: str = "resnet50", checkpoint: str | None = None) -> SaliencyCueExtractor:
    """SCE over ``engine.backbones.build_backbone(backbone, checkpoint)``."""
    from engine.backbones import build_backbone

    return SaliencyCueExtractor(build_backbone(backbone, checkpoint))


def build_detector(backbone: str = "resnet50", checkpoint: str | None = None) -> TwoStreamDetector:
    """Two-stream detector; both streams start from the same ``checkpoint`` (as in the USOD code)."""
    from engine.backbones import build_backbone

    return TwoStreamDetector(build_backbone(backbone, checkpoint), build_backbone(backbone, checkpoint))
