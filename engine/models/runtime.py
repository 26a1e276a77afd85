"""Where and how models run: device, precision, and model identity for fingerprints."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """A resolved device, autocast dtype (``None``: full fp32) and weight dtype (``None``: fp32).

    On CUDA the weights are stored in the autocast dtype (bf16, or fp16 where bf16 is missing) and
    autocast stays on for the ops that mix dtypes; on CPU they stay fp32. ``compile``: wrap the
    fixed-shape image encoders in ``torch.compile``.
    """

    device: torch.device
    autocast_dtype: torch.dtype | None
    weights_dtype: torch.dtype | None = None
    compile: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast context for inference (a no-op on fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype model inputs are cast to (the weights' dtype)."""
        return self.weights_dtype or torch.float32


def resolve_runtime(device: str = "auto", precision: str = "auto", compile: bool = False) -> Runtime:
    """Turn ``device`` (auto|cpu|cuda|cuda:N) and ``precision`` (auto|fp32|bf16|fp16) into a Runtime.

    ``auto`` picks CUDA when available, and bf16 on GPUs that support it (fp16 otherwise); on CPU
    ``auto`` means fp32. On CUDA a reduced precision loads the weights in that dtype; on CPU the
    weights stay fp32 and only autocast uses it.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N)") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available on this machine")
    if resolved.type == "cpu":
        torch.set_flush_denormal(True)  # denormal weights (1e-10 inits) slow CPU math 2-10x
    if precision == "auto":
        if resolved.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision not in _DTYPES:
        raise ValueError(f"unknown precision {precision!r} (use auto, fp32, bf16 or fp16)")
    dtype = None if precision == "fp32" else _DTYPES[precision]
    weights = dtype if resolved.type == "cuda" else None
    return Runtime(resolved, dtype, weights, bool(compile))


def _identity_cache() -> Path:
    root = Path(os.environ.get("SODFORGE_CACHE", Path.home() / ".cache" / "sodforge"))
    return root / "identity.json"


def directory_identity(directory: str | Path) -> str:
    """Content hash of a model directory (every file's name and bytes).

    Large weight files are hashed once and remembered by (path, size, mtime) in the cache.
    """
    directory = Path(directory).resolve()
    cache_path = _identity_cache()
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    digest = hashlib.blake2b(digest_size=16)
    changed = False
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")):
        stat = path.stat()
        key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
        file_hash = cache.get(key)
        if file_hash is None:
            file_digest = hashlib.blake2b(digest_size=16)
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 22):
                    file_digest.update(chunk)
            file_hash = cache[key] = file_digest.hexdigest()
            changed = True
        digest.update(f"{path.relative_to(directory)}={file_hash};".encode())
    if changed:
        with contextlib.suppress(OSError):
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_path)
    return digest.hexdigest()
