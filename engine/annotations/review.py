"""Pseudo-labels to review: label rows of a run sorted by quality, mask overlays, display images.

Reads the label shards (Parquet) directly, never the DuckDB file, so reviewing works while a flow
writes new shards.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageDraw

from engine.annotations.records import check_image_id, check_run_id
from engine.catalog import Workdir
from engine.catalog.runs import recency
from engine.images import read_rgb
from engine.images.paths import resolve_stored
from engine.masks import decode_rle

REVIEW_COLUMNS = (
    "image_id", "path", "run_id", "status", "error", "caption", "phrase", "category", "quality_score",
    "height", "width",
)
OVERLAY_RGBA = (255, 64, 0, 110)
BOX_RGBA = (255, 230, 0, 255)
DISPLAY_MAX_SIDE = 1600


def _read(path: Path, columns: list[str] | None = None) -> list[dict]:
    try:
        return pq.read_table(path, columns=columns).to_pylist()
    except (OSError, pa.ArrowInvalid, KeyError):
        return []


def list_runs(workdir: Workdir) -> list[dict]:
    """Labelling runs that have label shards, newest first: ``run_id``, ``started_at``, ``images``."""
    runs = []
    for path in sorted(workdir.runs_dir.glob("*.parquet")) if workdir.runs_dir.is_dir() else []:
        for row in _read(path):
            if workdir.labels_dir(row["run_id"]).is_dir():
                runs.append(row)
    known = {r["run_id"] for r in runs}
    for folder in sorted(workdir.labels_root.glob("run=*")) if workdir.labels_root.is_dir() else []:
        run_id = folder.name.split("=", 1)[1]
        if run_id not in known:
            runs.append({"run_id": run_id, "started_at": None, "images": None, "state": None})
    return sorted(runs, key=lambda r: (r["started_at"] is not None, recency(r) if r["started_at"] else ()), reverse=True)


class ReviewIndex:
    """Label rows of each run (without masks) and where each image's row lives, cached per file set."""

    def __init__(self, workdir: Workdir):
        self.workdir = workdir
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple, list[dict]]] = {}

    def rows(self, run_id: str) -> list[dict]:
        """Rows of ``run_id`` (``REVIEW_COLUMNS`` + ``shard_file``), worst first.

        Order: ``no_object`` before ``ok``, then ``quality_score`` ascending; ``error`` rows (unreadable
        images) are left out.
        """
        check_run_id(run_id)
        if not self.workdir.labels_dir(run_id).is_dir():
            raise KeyError(f"labelling run {run_id} has no labels in {self.workdir.root}")
        files = sorted(self.workdir.labels_dir(run_id).glob("*.parquet"))
        key = tuple((str(p), p.stat().st_mtime_ns) for p in files)
        with self._lock:
            cached = self._cache.get(run_id)
            if cached is None or cached[0] != key:
                rows = [
                    {**row, "path": resolve_stored(row["path"], self.workdir.root), "shard_file": str(path)}
                    for path in files
                    for row in _read(path, list(REVIEW_COLUMNS))
                    if row["status"] != "error"
                ]
                rows.sort(key=lambda r: (r["status"] == "ok", r["quality_score"] if r["quality_score"] is not None else -1.0))
                self._cache[run_id] = (key, rows)
            return self._cache[run_id][1]

    def find(self, run_id: str, image_id: str) -> dict | None:
        check_image_id(image_id)
        return next((r for r in self.rows(run_id) if r["image_id"] == image_id), None)

    def label(self, run_id: str, image_id: str) -> dict | None:
        """The full label row (with ``mask_rle`` and boxes) of ``image_id`` in ``run_id``."""
        row = self.find(run_id, image_id)
        if row is None:
            return None
        table = pq.read_table(row["shard_file"], filters=[("image_id", "=", image_id)])
        return table.to_pylist()[0] if table.num_rows else None


def overlay_png(label: dict) -> bytes:
    """RGBA PNG of ``label``'s mask (translucent orange) and boxes (yellow), same size as the image."""
    height, width = label["height"], label["width"]
    if not height or not width:
        raise ValueError(f"label of {label.get('path')} has no size (status {label.get('status')})")
    rgba = np.zeros((height, width, 4), np.uint8)
    if label.get("mask_rle"):
        rgba[decode_rle(label["mask_rle"], (height, width)).astype(bool)] = OVERLAY_RGBA
    image = Image.fromarray(rgba, "RGBA")
    draw = ImageDraw.Draw(image)
    line = max(1, round(min(height, width) / 150))
    for x0, y0, x1, y1 in label.get("boxes_xyxy") or []:
        draw.rectangle([x0, y0, x1, y1], outline=BOX_RGBA, width=line)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def display_jpeg(path: str | Path, max_side: int = DISPLAY_MAX_SIDE, quality: int = 90) -> bytes:
    """The image as a browser-safe JPEG (EXIF orientation applied, as the labels use), longest side capped.

    Raises ``engine.images.ImageReadError`` (a ValueError) for files that cannot be decoded.
    """
    image = Image.fromarray(read_rgb(path))
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()
