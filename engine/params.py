"""Typed, frozen parameters for every stage; ``params.yaml`` is read only here, at the edge.

``params.yaml`` is the single source for DVC and Prefect. Unknown keys are an error (a typo must
not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_type_hints

import yaml

T = TypeVar("T")


@dataclass(frozen=True)
class SampleParams:
    """Generated sample set: ``count`` images of ``size_hw`` with one salient shape each."""

    seed: int = 0
    count: int = 48
    size_hw: tuple[int, int] = (192, 256)
    with_depth: bool = True


@dataclass(frozen=True)
class ModelSpec:
    """One model: ``family`` (blip / grounding_dino / sam) and a ``source``.

    ``source`` is a Hugging Face id, a local directory written by ``save_pretrained``, an official
    checkpoint file (``.pth``), or ``tiny`` for the built-in tiny random model.
    """

    family: str
    source: str
    revision: str | None = None


DEFAULT_PROFILES: dict[str, dict[str, str]] = {
    "tiny": {"captioner": "tiny", "grounder": "tiny", "segmenter": "tiny"},
    "base": {
        "captioner": "Salesforce/blip-image-captioning-base",
        "grounder": "IDEA-Research/grounding-dino-tiny",
        "segmenter": "facebook/sam-vit-base",
    },
    "large": {
        "captioner": "Salesforce/blip-image-captioning-large",
        "grounder": "IDEA-Research/grounding-dino-base",
        "segmenter": "facebook/sam-vit-huge",
    },
}


@dataclass(frozen=True)
class ModelsParams:
    """Which models label the images, on which device and in which precision."""

    profile: str = "tiny"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False  # torch.compile the fixed-shape image encoders (SAM, BLIP); GPU, long runs
    profiles: dict[str, dict[str, str]] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    # Fine-tuned BLIP (finetune-captioner); replaces the profile's captioner once it is finished and was
    # fine-tuned from that same captioner (see engine.captioning.checkpoint).
    captioner_checkpoint: str | None = None

    def specs(self, profile: str | None = None, finetuned: bool = True) -> dict[str, ModelSpec]:
        """The captioner / grounder / segmenter specs of ``profile`` (default: ``self.profile``).

        With ``finetuned`` (default), a finished ``captioner_checkpoint`` replaces the captioner.
        """
        name = profile or self.profile
        table = self.profiles.get(name) or DEFAULT_PROFILES.get(name)
        if table is None:
            raise ValueError(f"unknown model profile {name!r}; known: {sorted({*DEFAULT_PROFILES, *self.profiles})}")
        families = {"captioner": "blip", "grounder": "grounding_dino", "segmenter": "sam"}
        missing = sorted(set(families) - set(table))
        if missing:
            raise ValueError(f"model profile {name!r} lacks {missing}")
        if finetuned and self.captioner_checkpoint:
            from engine.captioning.checkpoint import finetuned_source

            table = {**table, "captioner": finetuned_source(self.captioner_checkpoint, str(table["captioner"])) or table["captioner"]}
        return {role: ModelSpec(families[role], str(table[role])) for role in families}


@dataclass(frozen=True)
class LabelParams:
    """Labelling: captioning, grounding and segmentation settings."""

    caption_prompt: str = ""
    max_new_tokens: int = 20
    num_beams: int = 1
    box_threshold: float = 0.3
    text_threshold: float = 0.25
    nms_iou: float = 0.5
    max_boxes: int = 5
    box_policy: Literal["best", "union"] = "union"
    mask_threshold: float = 0.0
    # SAM: one mask per box (SAM's convention for a box prompt, Grounded-SAM's call); true: three
    # candidates and the best predicted IoU is kept.
    sam_multimask: bool = False
    # GroundingDINO canvas = resized image rounded up to this (pixels, masked): images of one canvas
    # share a model call. 1 = no padding (only equal sizes batch). Changes boxes slightly (README).
    ground_pad_multiple: int = 8
    batch_size: int = 8
    decode_workers: int = 2
    finish_workers: int = 2
    shard_workers: int = 1

    PERFORMANCE_KEYS = ("batch_size", "decode_workers", "finish_workers", "shard_workers")

    def result_params(self) -> dict[str, Any]:
        """The parameters that change labels (performance knobs such as batch size excluded)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.PERFORMANCE_KEYS}

    def __post_init__(self) -> None:
        checks = [
            (0.0 <= self.box_threshold <= 1.0, "box_threshold must be in [0, 1]"),
            (0.0 <= self.text_threshold <= 1.0, "text_threshold must be in [0, 1]"),
            (0.0 < self.nms_iou <= 1.0, "nms_iou must be in (0, 1]"),
            (self.max_boxes >= 1, "max_boxes must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.ground_pad_multiple >= 1, "ground_pad_multiple must be >= 1"),
            (self.box_policy in ("best", "union"), "box_policy must be 'best' or 'union'"),
            (self.max_new_tokens >= 1, "max_new_tokens must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"label params: {message}")


@dataclass(frozen=True)
class IngestParams:
    shard_size: int = 512

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"ingest params: shard_size must be >= 1, got {self.shard_size}")


@dataclass(frozen=True)
class Params:
    """All parameters, as read from ``params.yaml``."""

    sample: SampleParams = field(default_factory=SampleParams)
    ingest: IngestParams = field(default_factory=IngestParams)
    models: ModelsParams = field(default_factory=ModelsParams)
    label: LabelParams = field(default_factory=LabelParams)


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(names)}")
    values = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value or {}, f"{where}.{key}")
        elif getattr(hint, "__origin__", None) is tuple and isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return cls(**values)


def _read_yaml(path: str | Path | None) -> dict[str, Any]:
    """The mapping of sections in ``path`` ({} when ``path`` is None); ValueError naming the file."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: parameters file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def load_section(path: str | Path | None, section: str, cls: type[T], overrides: dict[str, Any] | None = None) -> T:
    """One section of ``params.yaml`` as the dataclass ``cls`` (defaults when absent), plus overrides.

    Stages owned by other packages (``train``, ``refine``...) keep their own dataclass and read it
    with this function, so this module need not know every section.
    """
    data = _read_yaml(path).get(section) or {}
    return _build(cls, {**data, **(overrides or {})}, f"{path or 'params'}:{section}")


def load_params(path: str | Path | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> Params:
    """Read ``params.yaml`` (or defaults when ``path`` is None) and apply ``overrides``.

    ``overrides`` maps a section to keys, e.g. ``{"label": {"batch_size": 4}}``.
    """
    data = _read_yaml(path)
    known = {f.name for f in dataclasses.fields(Params)}
    for key, value in data.items():
        if key in known and value is not None and not isinstance(value, dict):
            raise ValueError(f"{path}:{key}: expected a mapping, got {type(value).__name__}")
    data = {k: dict(v or {}) for k, v in data.items() if k in known}
    for section, values in (overrides or {}).items():
        if section not in known:
            raise ValueError(f"unknown parameter section {section!r}; known: {sorted(known)}")
        data.setdefault(section, {}).update(values)
    return _build(Params, data, str(path or "params"))


def as_dict(params: Any) -> dict[str, Any]:
    """Plain dict of a params dataclass (for fingerprints and resolved-params files)."""
    return dataclasses.asdict(params)
