"""Image and mask bytes for exports: original bytes when they already show what was labelled.

A label's mask is ``(height, width)`` of the EXIF-oriented image. The original file is copied as is
when it decodes to that size with no EXIF rotation pending (and, if ``jpeg_only``, is a JPEG);
otherwise the oriented pixels are re-encoded (JPEG quality 95, or PNG), so masks always line up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.images.io import read_rgb
from engine.masks import decode_rle

ORIENTATION_TAG = 0x0112
JPEG_QUALITY = 95


@dataclass(frozen=True)
class ImagePayload:
    """Encoded image ``data`` with its file ``extension`` (``.jpg``, ``.png``...) and whether it was re-encoded."""

    data: bytes
    extension: str
    reencoded: bool


def _can_copy(path: Path, size_hw: tuple[int, int], jpeg_only: bool) -> str | None:
    """The extension to copy ``path`` under, or ``None`` when it must be re-encoded."""
    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(ORIENTATION_TAG, 1)
            fmt, mode, (width, height) = image.format, image.mode, image.size
    except (OSError, UnidentifiedImageError):
        return None
    if orientation not in (None, 1) or (height, width) != tuple(size_hw):
        return None
    if fmt == "JPEG" and (mode in ("RGB", "L") or not jpeg_only):
        return ".jpg"
    if jpeg_only:
        return None
    return path.suffix.lower() or ".png"


def image_payload(path: str | Path, size_hw: tuple[int, int], jpeg_only: bool = False) -> ImagePayload:
    """The bytes of the labelled image ``path`` as the label saw it (``size_hw``).

    Raises:
        ValueError: unreadable image, or its size no longer matches the label (names the file).
    """
    path = Path(path)
    extension = _can_copy(path, size_hw, jpeg_only)
    if extension is not None:
        return ImagePayload(path.read_bytes(), extension, False)
    rgb = read_rgb(path)  # raises ImageReadError (a ValueError) naming the file
    if rgb.shape[:2] != tuple(size_hw):
        raise ValueError(f"{path}: image is {rgb.shape[1]}x{rgb.shape[0]} now but was labelled at "
                         f"{size_hw[1]}x{size_hw[0]}; relabel it")
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if jpeg_only:
        ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        extension = ".jpg"
    else:
        ok, buffer = cv2.imencode(".png", bgr)
        extension = ".png"
    if not ok:
        raise ValueError(f"{path}: could not re-encode the image")
    return ImagePayload(buffer.tobytes(), extension, True)


def label_mask(row: dict) -> np.ndarray:
    """The ``(height, width)`` bool mask of a label row (all False when it has no mask)."""
    height, width = row.get("height"), row.get("width")
    if not height or not width:
        raise ValueError(f"{row.get('path')}: label has no image size (status {row.get('status')})")
    if row.get("mask_rle") is None:
        return np.zeros((int(height), int(width)), bool)
    return decode_rle(row["mask_rle"], (int(height), int(width)))


def mask_png(mask: np.ndarray) -> bytes:
    """An ``(H, W)`` bool mask as 8-bit grayscale PNG bytes with values 0 / 255."""
    ok, buffer = cv2.imencode(".png", np.where(mask, 255, 0).astype(np.uint8))
    if not ok:
        raise ValueError("could not encode the mask as PNG")
    return buffer.tobytes()


def read_mask_png(data_or_path: bytes | str | Path) -> np.ndarray:
    """Decode a 0/255 mask PNG (bytes or file) into an ``(H, W)`` bool mask (foreground ``> 128``)."""
    if isinstance(data_or_path, bytes):
        array = cv2.imdecode(np.frombuffer(data_or_path, np.uint8), cv2.IMREAD_GRAYSCALE)
    else:
        array = cv2.imread(str(data_or_path), cv2.IMREAD_GRAYSCALE)
    if array is None:
        raise ValueError(f"{'mask bytes' if isinstance(data_or_path, bytes) else data_or_path}: not a readable PNG")
    return array > 128
