"""ResNet checkpoints in torchvision layout (plain or MoCo-v2) mapped onto a transformers ResNet.

Key mapping (``i`` stage 1-4, ``j`` block, ``k`` conv 1-3; ``*`` = weight/bias/running_mean/
running_var/num_batches_tracked)::

    conv1.weight                  -> embedder.embedder.convolution.weight
    bn1.*                         -> embedder.embedder.normalization.*
    layer{i}.{j}.conv{k}.weight   -> encoder.stages.{i-1}.layers.{j}.layer.{k-1}.convolution.weight
    layer{i}.{j}.bn{k}.*          -> encoder.stages.{i-1}.layers.{j}.layer.{k-1}.normalization.*
    layer{i}.{j}.downsample.0.weight -> encoder.stages.{i-1}.layers.{j}.shortcut.convolution.weight
    layer{i}.{j}.downsample.1.*   -> encoder.stages.{i-1}.layers.{j}.shortcut.normalization.*
    fc.*                          -> dropped (classifier / MoCo projection head)

MoCo-v2 files (``moco_v2_200ep_pretrain.pth.tar``) hold ``{"state_dict": {"module.encoder_q.<key>":
...}}``; only ``encoder_q`` is kept (``encoder_k``, ``queue``, ``queue_ptr`` and ``fc`` are dropped).
Anything else that does not fit is refused with a :class:`ValueError` naming the file and keys.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

_STEM = {"conv1.weight": "embedder.embedder.convolution.weight"}
_BN_FIELDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_LAYER = re.compile(r"^layer(\d+)\.(\d+)\.(conv|bn)(\d+)\.(\w+)$")
_DOWN = re.compile(r"^layer(\d+)\.(\d+)\.downsample\.([01])\.(\w+)$")
_HF_LAYER = re.compile(r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.(convolution|normalization)\.(\w+)$")
_HF_SHORT = re.compile(r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.(convolution|normalization)\.(\w+)$")
_MOCO_PREFIXES = ("module.encoder_q.", "encoder_q.")
_LIST_LIMIT = 8


def torchvision_to_hf_key(key: str) -> str | None:
    """The transformers ResNet key of a torchvision ResNet key; ``None`` for dropped (``fc.*``) keys.

    Raises:
        KeyError: ``key`` is not a torchvision ResNet key.
    """
    if key.startswith("fc."):
        return None
    if key in _STEM:
        return _STEM[key]
    if key.startswith("bn1.") and key[4:] in _BN_FIELDS:
        return f"embedder.embedder.normalization.{key[4:]}"
    match = _LAYER.match(key)
    if match:
        stage, block, kind, index, field = match.groups()
        module = "convolution" if kind == "conv" else "normalization"
        return f"encoder.stages.{int(stage) - 1}.layers.{block}.layer.{int(index) - 1}.{module}.{field}"
    match = _DOWN.match(key)
    if match:
        stage, block, index, field = match.groups()
        module = "convolution" if index == "0" else "normalization"
        return f"encoder.stages.{int(stage) - 1}.layers.{block}.shortcut.{module}.{field}"
    raise KeyError(key)


def hf_to_torchvision_key(key: str) -> str:
    """The torchvision ResNet key of a transformers ResNet key (inverse of :func:`torchvision_to_hf_key`)."""
    if key == _STEM["conv1.weight"]:
        return "conv1.weight"
    if key.startswith("embedder.embedder.normalization."):
        return "bn1." + key.rsplit(".", 1)[1]
    match = _HF_LAYER.match(key)
    if match:
        stage, block, index, module, field = match.groups()
        kind = "conv" if module == "convolution" else "bn"
        return f"layer{int(stage) + 1}.{block}.{kind}{int(index) + 1}.{field}"
    match = _HF_SHORT.match(key)
    if match:
        stage, block, module, field = match.groups()
        return f"layer{int(stage) + 1}.{block}.downsample.{0 if module == 'convolution' else 1}.{field}"
    raise KeyError(key)


def read_state_dict(path: str | Path) -> dict:
    """Load a ``.pth``/``.pth.tar``/``.pt``/``.bin`` (``torch.load``, weights only) or ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any decoding failure is a bad file for the user
        raise ValueError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from err


def extract_torchvision_state(raw: object, path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The torchvision-layout tensors of a loaded checkpoint and its kind (``"moco"`` or ``"torchvision"``)."""
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a state dict (mapping), got {type(raw).__name__}")
    state = raw.get("state_dict", raw) if isinstance(raw.get("state_dict"), dict) else raw
    moco = [p for p in _MOCO_PREFIXES if any(str(k).startswith(p) for k in state)]
    if moco:
        prefix, kind = moco[0], "moco"
        picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    else:
        kind = "torchvision"
        picked = {k.removeprefix("module."): v for k, v in state.items()}
    bad = sorted(k for k, v in picked.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise ValueError(f"{path}: entries that are not tensors: {_short(bad)}")
    return picked, kind


def _short(keys: list) -> str:
    shown = ", ".join(str(k) for k in keys[:_LIST_LIMIT])
    return f"[{shown}{f', ... ({len(keys)} in all)' if len(keys) > _LIST_LIMIT else ''}]"


def map_torchvision_state(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: str | Path
) -> dict[str, torch.Tensor]:
    """Rename ``state`` onto ``expected``'s transformers keys, refusing any mismatch.

    ``num_batches_tracked`` may be absent (old torchvision files lack it); everything else must match
    exactly in keys and shapes.
    """
    mapped: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, value in state.items():
        try:
            hf_key = torchvision_to_hf_key(key)
        except KeyError:
            unexpected.append(key)
            continue
        if hf_key is None:
            continue
        if hf_key not in expected:
            unexpected.append(key)
        else:
            mapped[hf_key] = value
    missing = [hf_to_torchvision_key(k) for k in expected if k not in mapped and not k.endswith("num_batches_tracked")]
    shapes = [
        f"{hf_to_torchvision_key(k)}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in mapped.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = [f"missing keys {_short(missing)}" if missing else "", f"unexpected keys {_short(unexpected)}" if unexpected else "",
                 f"shape mismatches {_short(shapes)}" if shapes else ""]
        raise ValueError(f"{path}: checkpoint does not fit this ResNet: " + "; ".join(p for p in parts if p))
    return {**expected, **mapped}


def load_resnet_checkpoint(model: nn.Module, path: str | Path) -> str:
    """Load a torchvision or MoCo-v2 ResNet file into a transformers ``ResNetBackbone``; returns the kind.

    Raises:
        ValueError: unreadable file, or missing/unexpected keys or shape mismatches (all listed).
    """
    state, kind = extract_torchvision_state(read_state_dict(path), path)
    full = map_torchvision_state(state, model.state_dict(), path)
    model.load_state_dict(full, strict=True)
    return kind
