"""Reading prediction and ground-truth maps, and matching files by stem.

Conventions (PySODEvalToolkit's): maps are read as ``(H, W) uint8`` grayscale; ground truth is
binarised later at ``> 128``; a prediction of another size is resized to the ground truth's size
(bilinear) before scoring.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.images.io import IMAGE_SUFFIXES


def read_gray_u8(path: str | Path) -> np.ndarray:
    """Read an image file as an ``(H, W) uint8`` grayscale map (16-bit files are scaled to 8 bits).

    Raises:
        ValueError: the file is missing, empty or not a decodable image (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: file is empty (0 bytes)")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None or image.size == 0:
        raise ValueError(f"{path}: not a readable image")
    return np.ascontiguousarray(image, dtype=np.uint8)


def to_gray_u8(array: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool / uint8 / float-in-[0, 1] map as ``(H, W) uint8`` in [0, 255]."""
    if array.ndim != 2:
        raise ValueError(f"expected an (H, W) map, got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        if array.size and (float(array.min()) < 0.0 or float(array.max()) > 1.0):
            raise ValueError(f"float maps must lie in [0, 1], got [{array.min():.3g}, {array.max():.3g}]")
        return np.round(array * 255.0).astype(np.uint8)
    raise TypeError(f"unsupported map dtype {array.dtype} (use bool, uint8 or float in [0, 1])")


def resize_to(pred: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize an ``(h, w) uint8`` prediction to ``size_hw`` (bilinear); unchanged if it already fits."""
    height, width = int(size_hw[0]), int(size_hw[1])
    if pred.shape == (height, width):
        return pred
    return cv2.resize(pred, (width, height), interpolation=cv2.INTER_LINEAR)


def index_by_stem(folder: str | Path, suffix: str | None = None, prefix: str = "") -> dict[str, Path]:
    """Files of ``folder`` (not recursive) keyed by stem.

    With ``suffix`` (e.g. ``".png"`` or ``"_mask.png"``), only names ending with it count and the
    stem is the name without ``prefix`` and ``suffix`` (PySODEvalToolkit's rule). Without a suffix,
    every image file counts and the stem is the name without ``prefix`` and extension.

    Raises:
        ValueError: ``folder`` is not a directory, or two files share a stem (names both).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a directory")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        if prefix and not path.name.startswith(prefix):
            continue
        if suffix:
            if not path.name.endswith(suffix) or len(path.name) <= len(suffix) + len(prefix):
                continue
            stem = path.name[len(prefix) : -len(suffix)]
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            stem = path.stem[len(prefix) :]
        else:
            continue
        if stem in found:
            raise ValueError(f"{folder}: two files share the stem {stem!r}: {found[stem].name} and {path.name}")
        found[stem] = path
    return found
