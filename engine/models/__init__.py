"""Foundation models: specs, a registry of loaders, tiny test models, runtime (device/precision)."""

from engine.models.outputs import BoxMasks, Detections
from engine.models.registry import clear_model_cache, load_model, resolve_source
from engine.models.runtime import Runtime, resolve_runtime
from engine.models.tiny import build_tiny_models

__all__ = [
    "BoxMasks",
    "Detections",
    "Runtime",
    "build_tiny_models",
    "clear_model_cache",
    "load_model",
    "resolve_runtime",
    "resolve_source",
]
