"""Decode any image file people keep into an RGB ``uint8`` array, or fail with a clear reason.

Odd but valid images are handled: EXIF orientation is applied, 16-bit and float images are scaled
to 8 bits, CMYK / palette / grayscale / alpha images are converted to RGB (alpha composited on
white). Broken files raise :class:`ImageReadError` naming the file and the problem.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
MAX_PIXELS = 30_000 * 30_000  # beyond this we refuse instead of exhausting memory
MIN_SIDE = 8


class ImageReadError(ValueError):
    """An image file could not be decoded; ``str(err)`` names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        image = Image.fromarray(((array - low) * scale).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def read_rgb(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read ``path`` as an ``(H, W, 3) uint8`` RGB array with EXIF orientation applied.

    Raises:
        ImageReadError: the file is missing, empty, truncated, not an image, too large or too small.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ImageReadError(path, f"cannot read file ({err.strerror or err})") from err
    if size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageReadError(path, f"image is too large ({width}x{height} pixels, limit {max_pixels})")
                image.load()
                image = ImageOps.exif_transpose(image) or image
                rgb = _to_rgb(image)
    except ImageReadError:
        raise
    except UnidentifiedImageError as err:
        raise ImageReadError(path, "not an image (format not recognised)") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageReadError(path, f"image is too large ({err})") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(path, f"corrupt or truncated image ({err})") from err
    array = np.asarray(rgb, dtype=np.uint8)
    if min(array.shape[:2]) < MIN_SIDE:
        raise ImageReadError(path, f"image is too small ({array.shape[1]}x{array.shape[0]}, min side {MIN_SIDE})")
    return array


def read_size_hw(path: str | Path) -> tuple[int, int]:
    """Height and width from the header alone (after EXIF orientation); raises ImageReadError."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(path, f"cannot read image header ({err})") from err
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)
