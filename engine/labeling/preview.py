"""Contact sheets of pseudo-labels: what people would rather see than read.

A sheet is a grid of tiles; each tile shows the image with its mask tinted red, its boxes in yellow,
and a footer line with the status, quality score and phrase.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.images import ImageReadError, read_rgb
from engine.masks import decode_rle
from engine.storage import names_path

TILE = 192
FOOTER = 14


def _tile(row: dict) -> Image.Image:
    try:
        rgb = read_rgb(row["path"])
    except ImageReadError:
        rgb = np.full((TILE, TILE, 3), 64, np.uint8)
    if row.get("mask_rle") and row.get("height") and rgb.shape[:2] == (row["height"], row["width"]):
        mask = decode_rle(row["mask_rle"], (row["height"], row["width"]))
        rgb = rgb.copy()
        rgb[mask] = (0.55 * rgb[mask] + 0.45 * np.array([255, 0, 0])).astype(np.uint8)
    image = Image.fromarray(rgb)
    scale = TILE / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(image)
    for box in row.get("boxes_xyxy") or []:
        draw.rectangle([v * scale for v in box], outline=(255, 220, 0), width=2)
    tile = Image.new("RGB", (TILE, TILE + FOOTER), (20, 20, 20))
    tile.paste(image, ((TILE - image.width) // 2, (TILE - image.height) // 2))
    quality = row.get("quality_score")
    text = f"{row['status']} q={quality:.2f} {row.get('phrase') or ''}" if quality is not None else f"{row['status']} {row.get('phrase') or ''}"
    ImageDraw.Draw(tile).text((3, TILE + 1), text[:34], fill=(235, 235, 235))
    return tile


def contact_sheet(rows: Sequence[dict], out_path: str | Path, columns: int = 4) -> Path:
    """Render ``rows`` (label records with ``path``, ``status``, ``mask_rle``, ``height``, ``width``,
    ``boxes_xyxy``, ``phrase``, ``quality_score``) as one PNG grid at ``out_path``."""
    if not rows:
        raise ValueError("contact_sheet needs at least one row")
    tiles = [_tile(row) for row in rows]
    rows_count = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * TILE, rows_count * (TILE + FOOTER)), (0, 0, 0))
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * TILE, (index // columns) * (TILE + FOOTER)))
    out_path = Path(out_path)
    with names_path(out_path):
        out_path.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(out_path)
    return out_path
