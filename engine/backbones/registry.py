"""Backbones by name: four feature maps at strides 4, 8, 16 and 32 from a transformers backbone.

Names (see :data:`BACKBONES`): ``resnet50`` (ResNet-50 v1.5; random init, a torchvision/MoCo-v2
file, or a local Hugging Face directory), ``tiny`` (the same ResNet family at tiny widths, for tests
and the CPU demo), ``cpu_small`` (ResNet-18-style basic blocks at small widths, trained from scratch
on a CPU: the ``cpu-real`` preset), ``swin_t``, ``pvt_v2_b2``, ``convnext_t`` (random init or a local Hugging Face
directory) and their test-sized cousins ``tiny_swin``, ``tiny_pvt_v2``, ``tiny_convnext``.
Nothing is downloaded: weights come only from the ``checkpoint`` you pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoBackbone, ConvNextConfig, PretrainedConfig, PvtV2Config, ResNetConfig, SwinConfig

from engine.backbones.resnet_checkpoint import load_resnet_checkpoint

OUT_FEATURES = ["stage1", "stage2", "stage3", "stage4"]
STRIDES = (4, 8, 16, 32)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone: its transformers ``model_type`` and a builder of its random-init config."""

    model_type: str
    config: Callable[[], PretrainedConfig]


def _resnet50() -> PretrainedConfig:
    return ResNetConfig(embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3],
                        layer_type="bottleneck", out_features=OUT_FEATURES)


def _resnet_cpu_small() -> PretrainedConfig:
    # ResNet-18 layout (basic blocks, depths 2-2-2-2) at 3/4 of its widths: 6.3M parameters, trains
    # from scratch on a CPU (the cpu-real preset: ~110 images/s at 160 px, 74 at 192 px, bf16, 2 cores).
    return ResNetConfig(embedding_size=32, hidden_sizes=[48, 96, 192, 384], depths=[2, 2, 2, 2],
                        layer_type="basic", out_features=OUT_FEATURES)


def _resnet_tiny() -> PretrainedConfig:
    # embedding < hidden_sizes[0] so stage 1 has a shortcut, as in ResNet-50 (layer1.0.downsample).
    return ResNetConfig(embedding_size=8, hidden_sizes=[16, 24, 32, 48], depths=[1, 1, 1, 1],
                        layer_type="bottleneck", out_features=OUT_FEATURES)


BACKBONES: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec("resnet", _resnet50),
    "tiny": BackboneSpec("resnet", _resnet_tiny),
    "cpu_small": BackboneSpec("resnet", _resnet_cpu_small),
    "swin_t": BackboneSpec("swin", lambda: SwinConfig(out_features=OUT_FEATURES)),
    "pvt_v2_b2": BackboneSpec("pvt_v2", lambda: PvtV2Config(
        hidden_sizes=[64, 128, 320, 512], depths=[3, 4, 6, 3], out_features=OUT_FEATURES)),
    "convnext_t": BackboneSpec("convnext", lambda: ConvNextConfig(out_features=OUT_FEATURES)),
    "tiny_swin": BackboneSpec("swin", lambda: SwinConfig(
        embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=2, out_features=OUT_FEATURES)),
    "tiny_pvt_v2": BackboneSpec("pvt_v2", lambda: PvtV2Config(
        hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 1, 1],
        mlp_ratios=[2, 2, 2, 2], out_features=OUT_FEATURES)),
    "tiny_convnext": BackboneSpec("convnext", lambda: ConvNextConfig(
        hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], out_features=OUT_FEATURES)),
}


_BACKBONE_CLASSES = {"resnet": "ResNetBackbone", "swin": "SwinBackbone", "pvt_v2": "PvtV2Backbone",
                     "convnext": "ConvNextBackbone"}


class Backbone(nn.Module):
    """A transformers backbone returning ``[C2, C3, C4, C5]`` at strides 4, 8, 16, 32.

    ``forward`` takes ``(B, 3, H, W) float`` RGB in ``[0, 1]`` and normalises with the ImageNet
    mean/std itself (non-persistent buffers, so state dicts hold weights only). Attributes: ``name``,
    ``channels`` (one per map), ``strides``, ``body`` (the transformers model).
    """

    def __init__(self, name: str, body: nn.Module):
        super().__init__()
        self.name = name
        self.body = body
        self.channels: tuple[int, ...] = tuple(int(c) for c in body.channels)
        self.strides: tuple[int, ...] = STRIDES
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` float in [0, 1] -> 4 maps ``(B, channels[i], ~H/s, ~W/s)`` for s in 4, 8, 16, 32."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"backbone {self.name}: expected images (B, 3, H, W), got {tuple(images.shape)}")
        normalised = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        return list(self.body(normalised).feature_maps)


def _from_directory(name: str, spec: BackboneSpec, directory: Path) -> nn.Module:
    """Load a local Hugging Face directory, refusing another architecture or missing/mismatched weights."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(directory), local_files_only=True)
    if config.model_type != spec.model_type:
        raise ValueError(f"{directory}: holds a {config.model_type!r} model, backbone {name!r} needs {spec.model_type!r}")
    import transformers

    # AutoBackbone.from_pretrained asks the Hub first (then falls back to timm): name the class instead.
    backbone_class = getattr(transformers, _BACKBONE_CLASSES[spec.model_type])
    try:
        body, info = backbone_class.from_pretrained(
            str(directory), out_features=OUT_FEATURES, local_files_only=True, output_loading_info=True
        )
    except (OSError, RuntimeError) as err:
        raise ValueError(f"{directory}: cannot load as backbone {name!r} ({err})") from err
    missing = list(info.get("missing_keys") or [])
    mismatched = [str(m) for m in info.get("mismatched_keys") or []]
    if missing or mismatched:
        raise ValueError(f"{directory}: weights do not fit backbone {name!r}: missing keys {missing[:8]}, "
                         f"shape mismatches {mismatched[:8]}")
    return body


def build_backbone(name: str, checkpoint: str | Path | None = None) -> Backbone:
    """Build backbone ``name`` (random init), or load ``checkpoint``.

    Args:
        name: a key of :data:`BACKBONES`.
        checkpoint: ``None`` (random init); a local Hugging Face directory (any name); or, for the
            ResNet names, a torchvision-layout or MoCo-v2 state-dict file.

    Raises:
        ValueError: unknown name, missing checkpoint, or a checkpoint that does not fit (keys named).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    spec = BACKBONES[name]
    if checkpoint is not None and Path(checkpoint).is_dir():
        return Backbone(name, _from_directory(name, spec, Path(checkpoint)))
    body = AutoBackbone.from_config(spec.config())
    if checkpoint is not None:
        if spec.model_type != "resnet":
            raise ValueError(f"{checkpoint}: backbone {name!r} loads only a Hugging Face directory, not a file")
        load_resnet_checkpoint(body, checkpoint)
    return Backbone(name, body)
