"""``SODNet`` = backbone + DEDecoder, and saving/loading it as one self-describing file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from engine.backbones import build_backbone
from engine.sod.decoder import DEDecoder


@dataclass(frozen=True)
class ModelConfig:
    """What builds an :class:`SODNet`: backbone name (+ optional checkpoint) and decoder options."""

    backbone: str = "tiny"
    checkpoint: str | None = None
    width: int = 16
    upsample: str = "dynamic"
    edge_branch: bool = True
    groups: int = 4
    size_hw: tuple[int, int] = (96, 128)  # input size the model was trained at (used for inference)
    final_upsample: str = "features"  # features | logits (see DEDecoder)
    side_outputs: bool = False  # deep-supervision heads (training only)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size_hw", tuple(int(s) for s in self.size_hw))


class SODOutput(NamedTuple):
    """``logits`` ``(B, 1, H, W)`` saliency logits; ``edge_logits`` the same shape, or ``None``;
    ``side_logits`` coarse deep-supervision logits of the same shape (training mode only, else empty)."""

    logits: torch.Tensor
    edge_logits: torch.Tensor | None
    side_logits: tuple[torch.Tensor, ...] = ()


class SODNet(nn.Module):
    """Salient-object network: ``(B, 3, H, W) float in [0, 1]`` -> :class:`SODOutput` at the input size."""

    def __init__(self, config: ModelConfig, load_checkpoint: bool = True):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone, config.checkpoint if load_checkpoint else None)
        self.decoder = DEDecoder(self.backbone.channels, config.width, config.upsample, config.edge_branch, config.groups,
                                 config.final_upsample, config.side_outputs)

    def forward(self, images: torch.Tensor) -> SODOutput:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"SODNet: expected images (B, 3, H, W), got {tuple(images.shape)}")
        return SODOutput(*self.decoder(self.backbone(images), images.shape[-2:]))


def save_model(model: SODNet, path: str | Path) -> Path:
    """Write ``{"config": ..., "state_dict": ...}`` to ``path`` atomically (temp name, then replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": dataclasses.asdict(model.config), "state_dict": state}, tmp)
    tmp.replace(path)
    return path


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> SODNet:
    """Rebuild an :class:`SODNet` from a file written by :func:`save_model` (strict key/shape match)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: model file not found")
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
        config = ModelConfig(**saved["config"])
    except Exception as err:  # noqa: BLE001 - torch.load raises many types for a foreign or broken file
        raise ValueError(f"{path}: not a sodforge SOD model file ({type(err).__name__}: {err})") from err
    model = SODNet(config, load_checkpoint=False)
    try:
        model.load_state_dict(saved["state_dict"], strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the stored config ({err})") from err
    return model.eval()
