"""Shared pieces of the official-checkpoint converters: loading, strict key checks, hashing, caching.

A converter turns an official state dict (``{name: tensor}``) into the state dict of a
transformers model. :func:`check_state_dict` compares the result with the model's own
``state_dict()`` and refuses any difference, naming the missing, unexpected and mismatched keys:
nothing is ever loaded with a silent ``strict=False``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

Tensors = dict[str, torch.Tensor]


def load_checkpoint(path: str | Path, nested_key: str | None = None) -> Tensors:
    """Read an official ``.pth`` with ``weights_only=True`` (no code runs) and return its tensors.

    ``nested_key``: when the file holds ``{nested_key: state_dict, ...}`` (GroundingDINO's ``model``),
    that entry is returned. A ``module.`` prefix left by DataParallel is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: checkpoint file not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's input error
        raise ValueError(f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})") from err
    if nested_key is not None and isinstance(data, dict) and isinstance(data.get(nested_key), dict):
        data = data[nested_key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(data).__name__}")
    return {key.removeprefix("module."): value for key, value in data.items()}


def rename(key: str, rules: Iterable[tuple[str, str]]) -> str:
    """Apply regex ``(pattern, replacement)`` rules to ``key`` in order."""
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def split_rows(tensor: torch.Tensor, parts: int = 3) -> list[torch.Tensor]:
    """Split a fused ``(parts*C, ...)`` projection (qkv / ``in_proj``) into ``parts`` equal row blocks."""
    if tensor.shape[0] % parts:
        raise ValueError(f"cannot split a tensor of shape {tuple(tensor.shape)} into {parts} equal parts")
    return list(tensor.chunk(parts, dim=0))


def _preview(keys: Iterable[str], limit: int = 12) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def check_state_dict(path: str | Path, converted: Tensors, expected: Tensors) -> None:
    """Raise ValueError naming ``path`` unless ``converted`` has exactly the keys and shapes of ``expected``.

    ``expected`` is the target model's ``state_dict()`` (tensors or meta tensors).
    """
    missing = set(expected) - set(converted)
    unexpected = set(converted) - set(expected)
    mismatched = [
        f"{key}: checkpoint {tuple(converted[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(converted))
        if tuple(converted[key].shape) != tuple(expected[key].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_preview(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_preview(unexpected)}")
    if mismatched:
        problems.append(f"mismatched shapes ({len(mismatched)}): {'; '.join(mismatched[:12])}")
    if problems:
        raise ValueError(f"{path}: checkpoint does not match the model it should convert to: " + " | ".join(problems))


def save_converted(model_cls: Any, config: Any, converted: Tensors, path: str | Path, out_dir: Path,
                   fill: Callable[[str], bool] | None = None) -> None:
    """Check ``converted`` against ``model_cls(config)`` and ``save_pretrained`` it into ``out_dir``.

    The model is built on the meta device and takes the checkpoint's tensors as they are
    (``assign=True``): no random initialisation, no copy. Target keys for which ``fill(key)`` is true
    and that the checkpoint lacks get a norm layer's initial value (weights 1, biases 0).
    Raises ValueError naming ``path`` and the keys when anything else is missing, extra or misshaped.
    """
    with torch.device("meta"):
        model = model_cls(config)
    expected = model.state_dict()
    converted = {key: value.contiguous() for key, value in converted.items()}
    for key, target in expected.items():
        if fill is not None and key not in converted and fill(key):
            make = torch.ones if key.endswith("weight") else torch.zeros
            converted[key] = make(target.shape, dtype=target.dtype)
    check_state_dict(path, converted, expected)
    model.load_state_dict(converted, strict=True, assign=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(out_dir)


def drop_known_extras(state: Tensors, patterns: Iterable[str]) -> Tensors:
    """Remove source keys known to carry nothing the target needs (regex ``patterns``, documented per model)."""
    compiled = [re.compile(p) for p in patterns]
    return {k: v for k, v in state.items() if not any(p.search(k) for p in compiled)}


def file_hash(path: str | Path, cache_dir: Path | None = None) -> str:
    """blake2b-128 of a file's bytes, remembered by (path, size, mtime) in ``cache_dir/hashes.json``."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
    index_path = (cache_dir or converted_root()) / "hashes.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if key in index:
        return index[key]
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    index[key] = digest.hexdigest()
    with contextlib.suppress(OSError):
        index_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(index))
        os.replace(tmp, index_path)
    return index[key]


def converted_root() -> Path:
    """``$SODFORGE_CACHE/converted`` (default ``~/.cache/sodforge/converted``)."""
    return Path(os.environ.get("SODFORGE_CACHE", Path.home() / ".cache" / "sodforge")) / "converted"


def write_directory_atomic(target: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(staging_dir)`` and rename the staging directory to ``target`` (readers never see half)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
        staging = Path(tmp) / "out"
        staging.mkdir()
        write(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    return target


def count_indices(state: Tensors, pattern: str) -> int:
    """Number of distinct integers captured by ``pattern`` (group 1) over the keys of ``state``."""
    compiled = re.compile(pattern)
    return len({m.group(1) for key in state if (m := compiled.match(key))})


def require(path: str | Path, state: Tensors, *keys: str) -> None:
    """Raise ValueError naming ``path`` when any of ``keys`` (needed to infer the config) is absent."""
    missing = [key for key in keys if key not in state]
    if missing:
        raise ValueError(f"{path}: checkpoint does not match the expected layout: missing keys {missing}")
