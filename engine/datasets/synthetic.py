"""A deterministic sample set: images with one clear salient object and its true mask.

Each image is a textured, low-contrast background with one saturated shape (disk, square,
triangle, star or ellipse) of a random colour, size and position; the true mask is saved beside it
(``masks/<stem>.png``, 0/255), and optionally a depth map (``depth/<stem>.png``) in which the
object stands closer than the background. The same seed always gives the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SHAPES = ("disk", "square", "triangle", "star", "ellipse")
COLOURS = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40),
    "orange": (240, 140, 30), "purple": (150, 60, 190), "white": (245, 245, 245), "black": (20, 20, 20),
}


@dataclass(frozen=True)
class SampleItem:
    stem: str
    shape: str
    colour: str


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    base = rng.uniform(60, 200, size=3)
    noise = rng.normal(0, 1, size=(height // 8 + 1, width // 8 + 1, 3))
    smooth = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    gradient = np.linspace(-20, 20, width)[None, :, None]
    image = base + 18 * smooth + gradient + rng.normal(0, 4, size=(height, width, 3))
    return np.clip(image, 0, 255)


def _shape_mask(rng: np.random.Generator, shape: str, height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    radius = rng.uniform(0.15, 0.32) * min(height, width)
    cy = rng.uniform(radius, height - radius)
    cx = rng.uniform(radius, width - radius)
    angle = rng.uniform(0, 2 * np.pi)
    if shape == "disk":
        cv2.circle(mask, (int(cx), int(cy)), int(radius), 1, -1, lineType=cv2.LINE_8)
    elif shape == "ellipse":
        axes = (int(radius), int(radius * rng.uniform(0.45, 0.75)))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, float(np.degrees(angle)), 0, 360, 1, -1)
    else:
        corners = {"square": 4, "triangle": 3, "star": 10}[shape]
        radii = np.full(corners, radius)
        if shape == "star":
            radii[1::2] *= 0.45
        theta = angle + np.arange(corners) * 2 * np.pi / corners
        points = np.stack([cx + radii * np.cos(theta), cy + radii * np.sin(theta)], axis=1)
        cv2.fillPoly(mask, [points.round().astype(np.int32)], 1)
    return mask.astype(bool)


def generate_sample_set(out_dir: str | Path, count: int = 48, size_hw: tuple[int, int] = (192, 256),
                        seed: int = 0, with_depth: bool = True) -> list[SampleItem]:
    """Write ``count`` images to ``out_dir/images`` with true masks in ``out_dir/masks``.

    Also writes ``out_dir/depth`` when ``with_depth`` and ``out_dir/meta.json`` (shape and colour
    of every image). Returns the items in order.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    height, width = size_hw
    if min(height, width) < 32:
        raise ValueError(f"size_hw must be at least 32x32, got {size_hw}")
    out = Path(out_dir)
    for sub in ("images", "masks", *(("depth",) if with_depth else ())):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    items = []
    for index in range(count):
        shape = SHAPES[index % len(SHAPES)]
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        stem = f"sample_{index:04d}"
        mask = _shape_mask(rng, shape, height, width)
        image = _background(rng, height, width)
        tint = np.array(COLOURS[colour], dtype=np.float64) + rng.normal(0, 6, size=(height, width, 3))
        image[mask] = tint[mask]
        Image.fromarray(image.astype(np.uint8)).save(out / "images" / f"{stem}.jpg", quality=92)
        Image.fromarray(mask.astype(np.uint8) * 255).save(out / "masks" / f"{stem}.png")
        if with_depth:
            depth = np.linspace(90, 160, height)[:, None] * np.ones((1, width))
            depth[mask] = 230
            depth += rng.normal(0, 3, size=depth.shape)
            Image.fromarray(np.clip(depth, 0, 255).astype(np.uint8)).save(out / "depth" / f"{stem}.png")
        items.append(SampleItem(stem, shape, colour))
    meta = {"seed": seed, "count": count, "size_hw": list(size_hw),
            "items": [{"stem": i.stem, "shape": i.shape, "colour": i.colour} for i in items]}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return items
