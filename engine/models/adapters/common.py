"""Shared loading helpers for the transformers adapters: dtype, SDPA, fp32 islands, compile."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from engine.models.runtime import Runtime

log = logging.getLogger(__name__)


def from_pretrained(
    model_cls: Any, directory: str, runtime: Runtime, fp32_modules: Callable[[nn.Module], list[nn.Module]] | None = None
) -> Any:
    """Load ``model_cls`` from ``directory`` onto ``runtime`` in eval mode.

    Weights end in ``runtime.dtype`` (bf16/fp16 on CUDA, fp32 on CPU), except the modules
    ``fp32_modules(model)`` names, which keep the checkpoint's fp32 values (loading everything in
    bf16 and casting back would keep bf16's rounding). SDPA attention where the architecture has it
    (transformers 5.24: SAM yes; BLIP and GroundingDINO have only their eager attention).
    """
    try:
        model = model_cls.from_pretrained(directory, attn_implementation="sdpa", dtype=torch.float32)
    except (ValueError, ImportError):
        model = model_cls.from_pretrained(directory, dtype=torch.float32)
    return place(model, runtime, fp32_modules)


def place(model: nn.Module, runtime: Runtime, fp32_modules: Callable[[nn.Module], list[nn.Module]] | None = None) -> Any:
    """An fp32 model on ``runtime``'s device in eval mode, cast to ``runtime.dtype`` but ``fp32_modules``."""
    model = model.to(runtime.device).eval()
    if runtime.dtype != torch.float32:
        keep = fp32_modules(model) if fp32_modules is not None else []
        cast_except(model, runtime.dtype, keep)
    return model


def cast_except(model: nn.Module, dtype: torch.dtype, keep: list[nn.Module]) -> None:
    """Cast floating parameters and buffers of ``model`` to ``dtype``, except inside ``keep``."""
    kept = {id(p) for module in keep for p in [*module.parameters(), *module.buffers()]}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if id(param) not in kept and param.is_floating_point() and param.dtype != dtype:
                param.data = param.data.to(dtype)
        for name, buffer in module.named_buffers(recurse=False):
            if id(buffer) not in kept and buffer.is_floating_point() and buffer.dtype != dtype:
                module._buffers[name] = buffer.to(dtype)


def to_device(batch: Any, runtime: Runtime) -> dict[str, torch.Tensor]:
    """Move a processor's output (a mapping of tensors) onto the runtime's device."""
    return {key: value.to(runtime.device) if torch.is_tensor(value) else value for key, value in batch.items()}


def _cast_floats(value: Any, dtype: torch.dtype) -> Any:
    if torch.is_tensor(value) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, (tuple, list)):
        return type(value)(_cast_floats(v, dtype) for v in value)
    return value


def fp32_island(module: nn.Module, out_dtype: torch.dtype | None = None) -> nn.Module:
    """Run ``module`` in fp32 inside a reduced-precision model: coordinates, boxes, Fourier features.

    Its floating inputs are cast to fp32 and autocast is off inside it, so a box coordinate of
    1000.5 px is not rounded to bf16's 8-bit mantissa (4 px steps at 1024). Outputs are cast to
    ``out_dtype`` when given (``None``: stay fp32, promoting what they are added to). Its weights
    must be fp32 already (see ``from_pretrained(fp32_modules=...)``).
    """
    inner: Callable[..., Any] = module.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        device_type = next((a.device.type for a in args if torch.is_tensor(a)), "cpu")
        with torch.autocast(device_type=device_type, enabled=False):
            out = inner(*_cast_floats(args, torch.float32), **{k: _cast_floats(v, torch.float32) for k, v in kwargs.items()})
        return _cast_floats(out, out_dtype) if out_dtype is not None else out

    module.forward = forward
    return module


def maybe_compile(module: nn.Module, runtime: Runtime, name: str) -> None:
    """``torch.compile`` ``module`` in place when the runtime asks for it (fixed-shape encoders only)."""
    if not runtime.compile:
        return
    log.info("torch.compile %s (first batches are slow while it compiles)", name)
    module.compile(dynamic=False)
