"""Shared loading helpers for the transformers adapters."""

from __future__ import annotations

from typing import Any

import torch

from engine.models.runtime import Runtime


def from_pretrained(model_cls: Any, directory: str, runtime: Runtime) -> Any:
    """Load ``model_cls`` from ``directory`` onto ``runtime`` in eval mode, preferring SDPA attention."""
    try:
        model = model_cls.from_pretrained(directory, attn_implementation="sdpa")
    except (ValueError, ImportError):
        model = model_cls.from_pretrained(directory)
    return model.to(runtime.device).eval()


def to_device(batch: Any, runtime: Runtime) -> dict[str, torch.Tensor]:
    """Move a processor's output (a mapping of tensors) onto the runtime's device."""
    return {key: value.to(runtime.device) if torch.is_tensor(value) else value for key, value in batch.items()}
