"""Parameters of ``train-sod`` (section ``train`` of params.yaml), as a frozen dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engine.params import load_section
from engine.sod.augment import AugmentParams
from engine.sod.losses import LossWeights
from engine.sod.model import ModelConfig


@dataclass(frozen=True)
class TrainParams:
    """Model, data, optimisation and loss settings of one training run.

    ``labels`` is the label source: a folder of label shards (one run, or ``run=<id>/`` folders, of
    which ``run_id`` picks one; the newest when ``run_id`` is None). ``size_hw`` is the training and
    inference input size (multiples of 32). ``precision``: ``auto`` = bf16-mixed on GPU, 32-true on CPU.
    """

    labels: str = "data/gt-labels/sample"
    run_id: str | None = None
    backbone: str = "tiny"
    checkpoint: str | None = None
    width: int = 16
    upsample: Literal["dynamic", "bilinear"] = "dynamic"
    edge_branch: bool = True
    groups: int = 4
    final_upsample: Literal["features", "logits"] = "features"
    side_outputs: bool = False
    size_hw: tuple[int, int] = (96, 128)
    epochs: int = 40
    batch_size: int = 8
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-2
    backbone_lr_mult: float = 1.0
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    loss_bce: float = 1.0
    loss_partial_bce: float = 1.0
    loss_iou: float = 1.0
    loss_edge: float = 1.0
    loss_side: float = 1.0
    confident_low: float = 0.1
    confident_high: float = 0.9
    band_px: int = 2
    edge_radius: int = 1
    val_fraction: float = 0.25
    min_quality: float | None = None
    hflip: bool = True
    crop_scale: tuple[float, float] = (1.0, 1.0)
    jitter: float = 0.0
    cache: bool = True
    cache_scale: float = 1.0
    cache_mb: float = 4096.0
    channels_last: bool = False
    seed: int = 0
    num_workers: int = 0
    accelerator: str = "auto"
    devices: int = 1
    precision: str = "auto"

    def __post_init__(self) -> None:
        checks = [
            (self.upsample in ("dynamic", "bilinear"), f"upsample must be dynamic|bilinear, got {self.upsample!r}"),
            (self.optimizer in ("adamw", "sgd"), f"optimizer must be adamw|sgd, got {self.optimizer!r}"),
            (self.schedule in ("cosine", "constant"), f"schedule must be cosine|constant, got {self.schedule!r}"),
            (len(self.size_hw) == 2 and all(s > 0 and s % 32 == 0 for s in self.size_hw),
             f"size_hw must be two positive multiples of 32, got {self.size_hw}"),
            (self.epochs >= 1 and self.batch_size >= 1, "epochs and batch_size must be >= 1"),
            (0.0 <= self.val_fraction < 1.0, f"val_fraction must be in [0, 1), got {self.val_fraction}"),
            (self.width % self.groups == 0, f"width ({self.width}) must be divisible by groups ({self.groups})"),
            (0.0 <= self.confident_low < self.confident_high <= 1.0, "need 0 <= confident_low < confident_high <= 1"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.backbone_lr_mult >= 0, f"backbone_lr_mult must be >= 0, got {self.backbone_lr_mult}"),
            (self.final_upsample in ("features", "logits"), f"final_upsample must be features|logits, got {self.final_upsample!r}"),
            (self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}"),
            (len(self.crop_scale) == 2 and 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1,
             f"crop_scale must be [low, high] with 0 < low <= high <= 1, got {self.crop_scale}"),
            (0.0 <= self.jitter < 1.0, f"jitter must be in [0, 1), got {self.jitter}"),
            (self.cache_scale >= 1.0, f"cache_scale must be >= 1, got {self.cache_scale}"),
            (self.cache_mb > 0, f"cache_mb must be > 0, got {self.cache_mb}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"train params: {message}")
        object.__setattr__(self, "size_hw", tuple(int(s) for s in self.size_hw))
        object.__setattr__(self, "crop_scale", tuple(float(s) for s in self.crop_scale))

    def model_config(self) -> ModelConfig:
        return ModelConfig(self.backbone, self.checkpoint, self.width, self.upsample, self.edge_branch,
                           self.groups, self.size_hw, self.final_upsample, self.side_outputs)

    def augment_params(self) -> AugmentParams:
        return AugmentParams(crop_scale=self.crop_scale, hflip=self.hflip, jitter=self.jitter)

    def loss_weights(self) -> LossWeights:
        return LossWeights(self.loss_bce, self.loss_partial_bce, self.loss_iou, self.loss_edge, self.loss_side,
                           self.confident_low, self.confident_high, self.band_px, self.edge_radius)

    # Not part of the resume fingerprint: devices/workers do not change the run; the label source
    # enters the fingerprint through the content of the rows it yields, not through its path.
    NON_RESULT_KEYS = ("num_workers", "accelerator", "devices", "labels", "run_id", "cache_mb")

    def result_params(self) -> dict[str, Any]:
        """Parameters that change the trained weights (for the resume fingerprint)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.NON_RESULT_KEYS}


PRESETS_SECTION = "train_presets"
PROJECT_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def train_presets(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Named ``train`` overrides from the ``train_presets`` section of ``path`` (default: the project's
    params.yaml), e.g. ``cpu-real`` (from scratch on a CPU) and ``gpu-real`` (pretrained backbone)."""
    from engine.params import _read_yaml

    source = path if path is not None else (PROJECT_PARAMS if PROJECT_PARAMS.is_file() else None)
    presets = _read_yaml(source).get(PRESETS_SECTION) or {}
    if not isinstance(presets, dict) or not all(isinstance(v, dict) for v in presets.values()):
        raise ValueError(f"{source}:{PRESETS_SECTION}: expected a mapping of preset names to train parameters")
    return presets


def load_train_params(path: str | Path | None, overrides: dict[str, Any] | None = None,
                      preset: str | None = None) -> TrainParams:
    """Section ``train`` of ``path`` (defaults when None), then preset ``preset`` (see :func:`train_presets`;
    looked up in ``path``, else in the project's params.yaml), then ``overrides`` (``None`` values ignored)."""
    clean = {k: v for k, v in (overrides or {}).items() if v is not None}
    if preset is not None:
        presets = train_presets(path) if path is not None and PRESETS_SECTION in _sections(path) else train_presets()
        if preset not in presets:
            raise ValueError(f"unknown train preset {preset!r}; known: {sorted(presets)}")
        clean = {**presets[preset], **clean}
    return load_section(path, "train", TrainParams, clean)


def _sections(path: str | Path) -> set[str]:
    from engine.params import _read_yaml

    return set(_read_yaml(path))
