"""Official checkpoints -> transformers model directories, converted once and cached.

``convert_cached(family, checkpoint)`` converts Meta's SAM ``.pth`` or IDEA's GroundingDINO ``.pth``
into ``$SODFORGE_CACHE/converted/<family>-<content hash>-<converter version>/`` (model and processor saved with
``save_pretrained``), so it is then loaded through exactly the same ``from_pretrained`` path as any
local directory. The directory is written under a temporary name and renamed into place.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.models.convert.common import converted_root, file_hash, write_directory_atomic
from engine.models.convert.grounding_dino import convert_grounding_dino
from engine.models.convert.sam import convert_sam

CONVERTERS: dict[str, Callable[[Path, Path], Path]] = {
    "sam": convert_sam,
    "grounding_dino": convert_grounding_dino,
}
CHECKPOINT_SUFFIXES = (".pth", ".pt")
# Bumped whenever a converter's output changes for the same file (c2: SAM decoder LayerNorm eps 1e-5,
# GroundingDINO label_enc dropped), so caches and model identities follow.
CONVERTER_VERSIONS = {"sam": "c2", "grounding_dino": "c2"}


def convert_cached(family: str, checkpoint: str | Path, cache_root: Path | None = None) -> tuple[Path, str]:
    """Directory of the converted ``checkpoint`` (converting on first use) and the checkpoint's hash."""
    if family not in CONVERTERS:
        raise ValueError(
            f"{checkpoint}: no converter for official {family!r} checkpoints (known: {sorted(CONVERTERS)}); "
            "use a directory written by save_pretrained instead"
        )
    checkpoint = Path(checkpoint)
    root = cache_root or converted_root()
    digest = file_hash(checkpoint, root)
    target = root / f"{family}-{digest}-{CONVERTER_VERSIONS[family]}"
    if not (target / "config.json").is_file():
        write_directory_atomic(target, lambda staging: CONVERTERS[family](checkpoint, staging))
    return target, digest


__all__ = ["CHECKPOINT_SUFFIXES", "CONVERTERS", "CONVERTER_VERSIONS", "convert_cached", "convert_grounding_dino", "convert_sam"]
