"""Training augmentation for (image, mask) pairs: random resized crop, horizontal flip, colour jitter.

Everything works on ``uint8`` arrays held by :class:`engine.sod.cache.PairCache` and returns the
network's input at the training size, so one decoded image yields a different view every epoch:

- crop: a random box covering ``scale`` of the image area with aspect ``ratio`` (width / height),
  resized to ``size_hw`` (bilinear for the image and the mask, so mask edges stay soft);
- flip: left-right with probability 0.5;
- jitter: brightness, contrast and saturation each multiplied by a factor in ``[1 - j, 1 + j]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentParams:
    """What :func:`augment_pair` does; ``crop_scale=(1, 1)``, ``hflip=False``, ``jitter=0`` = none."""

    crop_scale: tuple[float, float] = (1.0, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 4 / 3)
    hflip: bool = True
    jitter: float = 0.0

    def __post_init__(self) -> None:
        low, high = self.crop_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"augment: crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if not 0.0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"augment: crop_ratio must satisfy 0 < low <= high, got {self.crop_ratio}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"augment: jitter must be in [0, 1), got {self.jitter}")


def crop_box(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
             rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random ``(y0, x0, h, w)`` box inside ``height x width``: area share in ``scale``, w/h in ``ratio``.

    Falls back to the whole image when ten draws do not fit (as torchvision's RandomResizedCrop does).
    """
    if scale == (1.0, 1.0):
        return 0, 0, height, width
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    return 0, 0, height, width


def jitter_colours(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """``(H, W, 3) float32 in [0, 1]``: brightness, contrast, saturation each scaled by ``1 +- strength``."""
    if strength <= 0:
        return image
    brightness, contrast, saturation = (float(f) for f in rng.uniform(1 - strength, 1 + strength, size=3))
    out = image * brightness
    grey = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out = (out - grey.mean()) * contrast + grey.mean()
    grey = (out @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    out = (out - grey) * saturation + grey
    return np.clip(out, 0.0, 1.0, out=out)


def resize_pair(image: np.ndarray, mask: np.ndarray, size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``uint8`` image ``(h, w, 3)`` and mask ``(h, w)`` -> both at ``size_hw`` (bilinear; area when shrinking a lot)."""
    height, width = size_hw
    shrink = image.shape[0] > 2 * height or image.shape[1] > 2 * width
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return (cv2.resize(image, (width, height), interpolation=interpolation),
            cv2.resize(mask, (width, height), interpolation=interpolation))


def augment_pair(image: np.ndarray, mask: np.ndarray, size_hw: tuple[int, int], params: AugmentParams,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One random training view.

    Args:
        image: ``(h, w, 3) uint8`` RGB.
        mask: ``(h, w) uint8`` in 0..255 (soft edges allowed).
        size_hw: output size.
        params: what to apply.
        rng: the random source (one per data-loading worker).

    Returns:
        image ``(H, W, 3) float32 in [0, 1]`` and mask ``(H, W) float32 in [0, 1]`` at ``size_hw``.
    """
    if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
        raise ValueError(f"augment: need image (h, w, 3) and mask (h, w), got {image.shape} and {mask.shape}")
    y0, x0, h, w = crop_box(image.shape[0], image.shape[1], params.crop_scale, params.crop_ratio, rng)
    image, mask = resize_pair(image[y0:y0 + h, x0:x0 + w], mask[y0:y0 + h, x0:x0 + w], size_hw)
    if params.hflip and rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    image = jitter_colours(image.astype(np.float32) / 255.0, params.jitter, rng)
    return np.ascontiguousarray(image), np.ascontiguousarray(mask, dtype=np.float32) / 255.0
