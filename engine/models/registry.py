"""Model registry: ``family`` -> loader. Nothing is loaded at import; each process loads once.

A source is resolved to a local directory (built-in ``tiny``, a local ``save_pretrained``
directory, a Hugging Face id found in the local HF cache or downloaded when online, or an official
SAM / GroundingDINO ``.pth`` converted once into ``$SODFORGE_CACHE/converted``) and loaded with the
real ``from_pretrained`` classes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.models.runtime import Runtime, directory_identity
from engine.models.tiny import TINY_FAMILIES, ensure_tiny_model
from engine.params import ModelSpec


@dataclass(frozen=True)
class ResolvedSource:
    """Where a model's files are, a string that changes whenever its weights or numerics do, and the
    numerics its loader applies (``idea`` / ``transformers`` for grounding_dino, else None)."""

    directory: Path
    identity: str
    numerics: str | None = None


def resolve_source(spec: ModelSpec) -> ResolvedSource:
    """Find the files of ``spec`` locally (building ``tiny``), or raise ValueError saying what to do.

    GroundingDINO sources carry their numerics (``spec.numerics``, default ``idea`` for every source:
    official ``.pth``, Hugging Face ``IDEA-Research/grounding-dino-*`` and ``tiny`` alike) in the
    identity, so changing them changes every fingerprint that depends on the grounder.
    """
    resolved = _resolve_files(spec)
    if spec.family != "grounding_dino":
        return resolved
    from engine.models.numerics import DEFAULT_NUMERICS

    numerics = spec.numerics or DEFAULT_NUMERICS
    return ResolvedSource(resolved.directory, f"{resolved.identity};numerics={numerics}", numerics)


def _resolve_files(spec: ModelSpec) -> ResolvedSource:
    if spec.source == "tiny":
        if spec.family not in TINY_FAMILIES:
            raise ValueError(f"no tiny model for family {spec.family!r}")
        directory = ensure_tiny_model(spec.family)
        return ResolvedSource(directory, f"{spec.family}:tiny:{directory_identity(directory)}")
    path = Path(spec.source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"{path}: not a saved model directory (no config.json)")
        return ResolvedSource(path, f"{spec.family}:dir:{directory_identity(path)}")
    if path.is_file() and path.suffix in (".pth", ".pt"):
        # official checkpoint: converted once, cached
        from engine.models.convert import CONVERTER_VERSIONS, convert_cached

        directory, digest = convert_cached(spec.family, path)
        return ResolvedSource(directory, f"{spec.family}:pth:{digest}:{CONVERTER_VERSIONS[spec.family]}")
    if path.suffix in (".pth", ".pt", ".bin", ".safetensors") or path.exists():
        raise ValueError(
            f"{path}: only official .pth/.pt checkpoints (SAM, GroundingDINO) or save_pretrained directories "
            f"are supported for family {spec.family!r}"
            if path.exists()
            else f"{path}: model file not found"
        )
    return _resolve_hub(spec)


def _resolve_hub(spec: ModelSpec) -> ResolvedSource:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        directory = snapshot_download(spec.source, revision=spec.revision, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        try:
            directory = snapshot_download(spec.source, revision=spec.revision)
        except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as err:
            raise ValueError(
                f"model {spec.source!r} ({spec.family}) is neither a local directory nor in the Hugging Face "
                f"cache, and could not be downloaded ({type(err).__name__}). On a machine with internet run "
                f"`hf download {spec.source}` (then copy ~/.cache/huggingface/hub, or set HF_HOME, on this "
                f"machine; HF_HUB_OFFLINE=1 stops download attempts), or `hf download {spec.source} --local-dir DIR` "
                "and point the profile at DIR (README: Models)."
            ) from err
    commit = Path(directory).name
    return ResolvedSource(Path(directory), f"{spec.family}:hf:{spec.source}@{commit}")


def model_identities(specs: dict[str, ModelSpec]) -> dict[str, str]:
    """Identity strings of ``specs`` (by role) without loading any weights into memory."""
    return {role: resolve_source(spec).identity for role, spec in specs.items()}


Loader = Callable[[ResolvedSource, Runtime], Any]
LOADERS: dict[str, Loader] = {}


def register(family: str) -> Callable[[Loader], Loader]:
    """Decorator adding a loader for ``family`` to :data:`LOADERS`."""

    def wrap(loader: Loader) -> Loader:
        LOADERS[family] = loader
        return loader

    return wrap


_cache: dict[tuple, Any] = {}
_lock = threading.Lock()


def load_model(spec: ModelSpec, runtime: Runtime) -> Any:
    """Load ``spec`` on ``runtime`` once per process and return the cached adapter afterwards."""
    import engine.models.adapters  # noqa: F401  (registers the loaders)

    if spec.family not in LOADERS:
        raise ValueError(f"unknown model family {spec.family!r}; known: {sorted(LOADERS)}")
    key = (spec, runtime)
    with _lock:
        if key not in _cache:
            _cache[key] = LOADERS[spec.family](resolve_source(spec), runtime)
        return _cache[key]


def clear_model_cache() -> None:
    """Forget loaded models (tests, or to free memory)."""
    with _lock:
        _cache.clear()
