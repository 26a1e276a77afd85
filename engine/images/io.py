"""Decode any image file people keep into an RGB ``uint8`` array, or fail with a clear reason.

Odd but valid images are handled: EXIF orientation is applied, 16-bit and float images are scaled
to 8 bits, CMYK / palette / grayscale / alpha images are converted to RGB (alpha composited on
white). Broken files raise :class:`ImageReadError` naming the file and the problem.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
# Image formats people keep that we cannot decode (no plugin installed): reported as unsupported.
UNSUPPORTED_IMAGE_SUFFIXES = frozenset({".heic", ".heif", ".avif", ".jxl", ".svg", ".psd", ".cr2", ".cr3", ".nef",
                                        ".arw", ".dng", ".raf", ".orf", ".rw2"})
# PIL refuses to open anything above this as a possible decompression bomb (2 x Image.MAX_IMAGE_PIXELS,
# 178,956,970 pixels by default), so it is also the highest limit we can honour.
PIL_PIXEL_LIMIT = 2 * Image.MAX_IMAGE_PIXELS
MAX_PIXELS = PIL_PIXEL_LIMIT  # default of params.yaml ingest.max_pixels
MIN_SIDE = 8


class ImageReadError(ValueError):
    """An image file could not be decoded; ``str(err)`` names the file and the problem."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def read_problem(err: BaseException) -> str:
    """What went wrong when PIL (or the OS) read an image, in words, e.g. ``cannot read file
    ([Errno 5] Input/output error)`` or ``not an image (format not recognised)``."""
    if isinstance(err, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return f"image is too large to decode safely ({err}); downscale it to label it"
    if isinstance(err, UnidentifiedImageError):
        return "not an image (format not recognised)"
    if isinstance(err, OSError) and err.errno is not None:  # the OS failed: EIO, EACCES, ELOOP...
        return f"cannot read file ([Errno {err.errno}] {err.strerror or os.strerror(err.errno)})"
    return f"corrupt or truncated image ({err})"


def check_pixels(path: str | Path, width: int, height: int, max_pixels: int = MAX_PIXELS) -> None:
    """Raise ImageReadError when ``width x height`` exceeds ``max_pixels`` (too large to decode)."""
    if width * height > max_pixels:
        raise ImageReadError(path, f"image is too large ({width}x{height} = {width * height / 1e6:.1f} Mpx, "
                                   f"limit {max_pixels / 1e6:.1f} Mpx: ingest.max_pixels); downscale it to label it")


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
        ImageReadError: the file is missing, unreadable (I/O error), empty, truncated, not an image,
            larger than ``max_pixels`` or too small. Never any other exception for a bad file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise ImageReadError(path, read_problem(err)) from err
    if size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is max_pixels
            with Image.open(path) as image:
                check_pixels(path, *image.size, max_pixels)
                image.load()
                image = ImageOps.exif_transpose(image) or image
                rgb = _to_rgb(image)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(path, read_problem(err)) from err
    array = np.asarray(rgb, dtype=np.uint8)
    if min(array.shape[:2]) < MIN_SIDE:
        raise ImageReadError(path, f"image is too small ({array.shape[1]}x{array.shape[0]}, min side {MIN_SIDE})")
    return array


def read_size_hw(path: str | Path, max_pixels: int | None = None) -> tuple[int, int]:
    """Height and width from the header alone (after EXIF orientation); raises ImageReadError naming
    the file (unreadable, empty, not an image, or, with ``max_pixels``, too large)."""
    try:
        if Path(path).stat().st_size == 0:
            raise ImageReadError(path, "file is empty (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                orientation = image.getexif().get(0x0112, 1)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageReadError(path, read_problem(err)) from err
    if max_pixels is not None:
        check_pixels(path, width, height, max_pixels)
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)
