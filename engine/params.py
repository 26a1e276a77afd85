"""Typed, frozen parameters for every stage; ``params.yaml`` is read only here, at the edge.

``params.yaml`` is the single source for DVC and Prefect. Everything is checked before any work
starts: unknown sections and keys (a typo must not silently fall back to a default), wrong types and
out-of-range values are errors naming the file, the section and the key
(``params.yaml: label.num_beams: must be >= 1, got 0``). Types come from the annotations, ranges
from :func:`engine.params_check.bounded` field metadata (see :mod:`engine.params_check`).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from engine.params_check import ParamError, bounded, check_fields, coerce, field_hints

T = TypeVar("T")


@dataclass(frozen=True)
class SampleParams:
    """Generated sample set: ``count`` images of ``size_hw`` with one salient shape each."""

    seed: int = bounded(0, ge=0)
    count: int = bounded(48, ge=1)
    size_hw: tuple[int, int] = bounded((192, 256), ge=16)
    with_depth: bool = True

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class ModelSpec:
    """One model: ``family`` (blip / grounding_dino / sam) and a ``source``.

    ``source`` is a Hugging Face id, a local directory written by ``save_pretrained``, an official
    checkpoint file (``.pth``), or ``tiny`` for the built-in tiny random model. ``numerics``
    (grounding_dino only): ``idea`` (default for ``None``) or ``transformers``, which inverse sigmoid
    the box refinement uses (see ``engine/models/numerics.py``); part of the model's identity.
    """

    family: str
    source: str
    revision: str | None = None
    numerics: Literal["idea", "transformers"] | None = None

    def __post_init__(self) -> None:
        if self.numerics not in (None, "idea", "transformers"):
            raise ValueError(f"model {self.source!r}: numerics must be 'idea' or 'transformers', got {self.numerics!r}")
        if self.numerics is not None and self.family != "grounding_dino":
            raise ValueError(f"model {self.source!r}: numerics applies to grounding_dino only, not {self.family!r}")


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
    # GroundingDINO's inverse sigmoid: IDEA's (eps 1e-3, as the released weights were trained; default for
    # every grounder, Hugging Face IDEA-Research/grounding-dino-* included) or transformers' (eps 1e-5).
    grounder_numerics: Literal["idea", "transformers"] = "idea"

    def __post_init__(self) -> None:
        check_fields(self)  # also checks grounder_numerics (a Literal)
        if self.device not in ("auto", "cpu", "cuda") and not (self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise ParamError("device", f"must be auto, cpu, cuda or cuda:N; got {self.device!r}")

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
        specs = {role: ModelSpec(families[role], str(table[role])) for role in families}
        specs["grounder"] = dataclasses.replace(specs["grounder"], numerics=self.grounder_numerics)
        return specs


@dataclass(frozen=True)
class LabelParams:
    """Labelling: captioning, grounding and segmentation settings."""

    caption_prompt: str = ""
    max_new_tokens: int = bounded(20, ge=1)
    num_beams: int = bounded(1, ge=1)
    box_threshold: float = bounded(0.3, ge=0.0, le=1.0)
    text_threshold: float = bounded(0.25, ge=0.0, le=1.0)
    nms_iou: float = bounded(0.5, gt=0.0, le=1.0)
    max_boxes: int = bounded(5, ge=1)
    box_policy: Literal["best", "union"] = "union"
    mask_threshold: float = 0.0  # SAM mask logit threshold (any real number)
    # SAM: one mask per box (SAM's convention for a box prompt, Grounded-SAM's call); true: three
    # candidates and the best predicted IoU is kept.
    sam_multimask: bool = False
    # GroundingDINO canvas = resized image rounded up to this (pixels, masked): images of one canvas
    # share a model call. 1 = no padding (only equal sizes batch). Changes boxes slightly (README).
    ground_pad_multiple: int = bounded(8, ge=1)
    batch_size: int = bounded(8, ge=1)
    decode_workers: int = bounded(2, ge=1)
    finish_workers: int = bounded(2, ge=1)
    shard_workers: int = bounded(1, ge=1)

    PERFORMANCE_KEYS = ("batch_size", "decode_workers", "finish_workers", "shard_workers")

    def result_params(self) -> dict[str, Any]:
        """The parameters that change labels (performance knobs such as batch size excluded)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.PERFORMANCE_KEYS}

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class IngestParams:
    """How images are found and split: ``shard_size`` images per shard."""

    shard_size: int = bounded(512, ge=1)
    # Larger images get status=error instead of exhausting memory. PIL refuses anything above
    # 178,956,970 pixels (a possible decompression bomb), so that is the default and the maximum.
    max_pixels: int = bounded(178_956_970, ge=1, le=178_956_970)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class Params:
    """All parameters, as read from ``params.yaml``."""

    sample: SampleParams = field(default_factory=SampleParams)
    ingest: IngestParams = field(default_factory=IngestParams)
    models: ModelsParams = field(default_factory=ModelsParams)
    label: LabelParams = field(default_factory=LabelParams)


KNOWN_SECTIONS: dict[str, str] = {
    "sample": "engine.params:SampleParams",
    "ingest": "engine.params:IngestParams",
    "models": "engine.params:ModelsParams",
    "label": "engine.params:LabelParams",
    "evaluate": "engine.metrics.params:EvaluateParams",
    "annotate": "engine.annotations.select:SelectParams",
    "finetune": "engine.captioning.train:FinetuneParams",
    "train": "engine.sod.params:TrainParams",
    "refine": "engine.refine.params:RefineParams",
}
"""Every section ``params.yaml`` may hold -> its dataclass (imported only when a full check needs it).
A new section must be registered here: any other name is rejected as a typo."""

PRESET_SECTIONS: dict[str, str] = {"train_presets": "train"}
"""Sections of named presets -> the section each preset overrides (``sodforge train --preset NAME``)."""


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build(cls: type[T], data: Any, key: str, origin: str, overridden: frozenset[str] = frozenset()) -> T:
    """``cls`` from the mapping ``data`` found at ``key`` (``label``, ``refine.sce``) of ``origin`` (a file).

    Unknown keys, wrong types and out-of-range values raise ``ValueError`` naming the origin and the
    dotted key; keys listed in ``overridden`` are named as overrides instead of file entries.
    """

    def where(dotted: str) -> str:
        return f"{dotted} (override)" if dotted in overridden else f"{origin}: {dotted}"

    if not isinstance(data, dict):
        raise ValueError(f"{where(key)}: expected a mapping of keys, got {data!r} ({type(data).__name__})")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names), key=str)
    if unknown:
        hint = _suggest(unknown[0], names) if len(unknown) == 1 else ""
        raise ValueError(f"{where(key)}: unknown keys {unknown}{hint}; known: {sorted(names)}")
    hints = field_hints(cls)

    def nested(sub: type, mapping: dict, sub_key: str) -> Any:
        return _build(sub, mapping, sub_key, origin, overridden)

    values = {}
    for name, value in data.items():
        try:
            values[name] = coerce(hints[name], value, f"{key}.{name}", nested)
        except ParamError as err:
            raise ValueError(f"{where(err.key)}: {err.problem}") from None
    try:
        return cls(**values)
    except ParamError as err:  # a check in __post_init__ that names its field
        raise ValueError(f"{where(f'{key}.{err.key}')}: {err.problem}") from None
    except (ValueError, TypeError) as err:
        message = str(err)
        prefix = "" if message.startswith(key.split(".")[0]) else f"{key}: "
        raise ValueError(f"{origin}: {prefix}{message}") from None


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


def _sections(path: str | Path | None, extra: str | None = None) -> dict[str, Any]:
    """The sections of ``path``; a section nobody reads (a typo such as ``lable:``) is an error."""
    data = _read_yaml(path)
    known = {*KNOWN_SECTIONS, *PRESET_SECTIONS, *([extra] if extra else [])}
    for name, value in data.items():
        if name not in known:
            raise ValueError(f"{path}: unknown section {name!r}{_suggest(name, known)}; known: {sorted(known)}")
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{path}: {name}: expected a mapping of keys, got {value!r} ({type(value).__name__})")
    return data


def load_section(path: str | Path | None, section: str, cls: type[T], overrides: dict[str, Any] | None = None) -> T:
    """One section of ``params.yaml`` as the dataclass ``cls`` (defaults when absent), plus overrides.

    Stages owned by other packages (``train``, ``refine``...) keep their own dataclass and read it
    with this function (their section is listed in :data:`KNOWN_SECTIONS`).
    """
    data = _sections(path, section).get(section) or {}
    overrides = overrides or {}
    return _build(cls, _merge(data, overrides), section, str(path or "params"), _flat_keys(overrides, section))


def load_params(path: str | Path | None = None, overrides: dict[str, dict[str, Any]] | None = None) -> Params:
    """Read ``params.yaml`` (or defaults when ``path`` is None) and apply ``overrides``.

    ``overrides`` maps a section to keys, e.g. ``{"label": {"batch_size": 4}}``. Every section name
    is checked; the sections of :class:`Params` are checked key by key (the others by their stages,
    or all at once by :func:`check_params_file`).
    """
    known = [f.name for f in dataclasses.fields(Params)]
    data = {k: dict(v or {}) for k, v in _sections(path).items() if k in known}
    for section, values in (overrides or {}).items():
        if section not in known:
            raise ValueError(f"unknown parameter section {section!r}{_suggest(section, known)}; known: {sorted(known)}")
        data[section] = _merge(data.get(section, {}), values)
    origin = str(path or "params")
    overridden = frozenset().union(*(_flat_keys(v, s) for s, v in (overrides or {}).items()))
    sections = {name: _build(hint, data.get(name, {}), name, origin, overridden)
                for name, hint in field_hints(Params).items()}
    return Params(**sections)


def check_params_file(path: str | Path) -> dict[str, Any]:
    """Build every section of ``path`` (all of :data:`KNOWN_SECTIONS`, defaults where absent) so a
    pipeline fails on any typo before its first stage; returns ``{section: dataclass}``."""
    data = _sections(path)
    built = {}
    for section, target in KNOWN_SECTIONS.items():
        module, name = target.split(":")
        cls = getattr(importlib.import_module(module), name)
        built[section] = _build(cls, data.get(section) or {}, section, str(path))
    for section, base in PRESET_SECTIONS.items():
        cls = type(built[base])  # a preset is checked as the section it overrides
        for preset, values in (data.get(section) or {}).items():
            if not isinstance(values, dict):
                raise ValueError(f"{path}: {section}.{preset}: expected a mapping of {base} keys, got {values!r}")
            built[f"{section}.{preset}"] = _build(cls, _merge(data.get(base) or {}, values),
                                                  f"{section}.{preset}", str(path))
    return built


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied; nested mappings merge key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _flat_keys(values: dict[str, Any], prefix: str) -> frozenset[str]:
    """Dotted keys of a (nested) override mapping: ``{"sce": {"epochs": 2}}`` -> ``{prefix.sce.epochs}``."""
    keys = set()
    for key, value in values.items():
        dotted = f"{prefix}.{key}"
        keys.add(dotted)
        if isinstance(value, dict):
            keys |= _flat_keys(value, dotted)
    return frozenset(keys)


def as_dict(params: Any) -> dict[str, Any]:
    """Plain dict of a params dataclass (for fingerprints and resolved-params files)."""
    return dataclasses.asdict(params)
