"""Training data straight from label shards: RLE masks decoded on the fly, images read from their paths.

Only the small label columns are held in memory (ids, paths, sizes, RLE strings); pixels are read per
item. The train/val split is a deterministic function of the image id (a hash), so it is stable
across runs, machines and shard layouts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from engine.images import read_rgb
from engine.images.paths import resolve_stored, shard_root
from engine.masks import decode_rle
from engine.sod.augment import AugmentParams, augment_pair, resize_pair
from engine.sod.cache import PairCache

LABEL_COLUMNS = ["image_id", "path", "run_id", "status", "height", "width", "mask_rle", "quality_score"]
Split = Literal["train", "val", "all"]


def find_label_shards(labels: str | Path, run_id: str | None = None) -> list[Path]:
    """Shard files of one labelling run under ``labels``.

    ``labels`` is either a folder of ``*.parquet`` shards or a folder of ``run=<id>/`` folders; then
    ``run_id`` picks one, and without it the most recently written run is used.
    """
    labels = Path(labels)
    if not labels.is_dir():
        raise ValueError(f"{labels}: label folder not found")
    direct = sorted(labels.glob("*.parquet"))
    if direct and run_id is None:
        return direct
    runs = sorted(p for p in labels.glob("run=*") if p.is_dir())
    if run_id is not None:
        folder = labels / f"run={run_id}"
        if not folder.is_dir():
            raise ValueError(f"{labels}: no run {run_id!r}; found {[p.name for p in runs]}")
        runs = [folder]
    if not runs:
        raise ValueError(f"{labels}: no label shards (*.parquet or run=*/)")
    newest = max(runs, key=lambda p: max((f.stat().st_mtime_ns for f in p.glob("*.parquet")), default=0))
    shards = sorted(newest.glob("*.parquet"))
    if not shards:
        raise ValueError(f"{newest}: no label shards")
    return shards


def split_of(image_id: str, val_fraction: float, seed: int = 0) -> Literal["train", "val"]:
    """``"val"`` for a stable ``val_fraction`` of image ids (hash of seed and id), else ``"train"``."""
    digest = hashlib.blake2b(f"{seed}:{image_id}".encode(), digest_size=8).digest()
    return "val" if int.from_bytes(digest, "big") / 2**64 < val_fraction else "train"


def read_label_rows(shards: list[Path], min_quality: float | None = None) -> list[dict]:
    """Rows with ``status == 'ok'`` (and ``quality_score >= min_quality`` if given), one per image id."""
    rows: dict[str, dict] = {}
    for shard in shards:
        try:
            table = pq.read_table(shard, columns=LABEL_COLUMNS)
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{shard}: not a label shard ({err})") from err
        root = shard_root(shard)  # label shards store image paths relative to their workdir / folder
        for row in table.to_pylist():
            if row["status"] != "ok" or not row["mask_rle"]:
                continue
            row["path"] = resolve_stored(row["path"], root)
            if min_quality is not None and (row["quality_score"] is None or row["quality_score"] < min_quality):
                continue
            rows.setdefault(row["image_id"], row)
    return [rows[k] for k in sorted(rows)]


def select_split(rows: list[dict], split: Split, val_fraction: float, seed: int = 0) -> list[dict]:
    if split == "all":
        return list(rows)
    return [r for r in rows if split_of(r["image_id"], val_fraction, seed) == split]


def load_pair(row: dict, size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Image ``(H, W, 3) float32 in [0, 1]`` and mask ``(H, W) float32 in [0, 1]`` resized to ``size_hw``.

    Raises ValueError when the image size differs from the label's ``(height, width)``.
    """
    image = read_rgb(row["path"])
    label_hw = (int(row["height"]), int(row["width"]))
    if image.shape[:2] != label_hw:
        raise ValueError(f"{row['path']}: image is {image.shape[:2]}, its label is {label_hw}")
    mask = decode_rle(row["mask_rle"], label_hw).astype(np.float32)
    height, width = size_hw
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA)
    return image, np.clip(mask, 0.0, 1.0)


class LabelShardDataset(Dataset):
    """Items ``{"image": (3, H, W) float in [0, 1], "mask": (1, H, W) float in [0, 1], "index": int}``.

    Args:
        rows: label rows from :func:`read_label_rows` (one split).
        size_hw: output size (the masks' resized edges keep soft values).
        hflip: flip image and mask together with probability 0.5 (training only).
    """

    def __init__(self, rows: list[dict], size_hw: tuple[int, int], hflip: bool = False):
        self.rows, self.size_hw, self.hflip = rows, tuple(size_hw), hflip

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        image, mask = load_pair(self.rows[index], self.size_hw)
        if self.hflip and torch.rand(()) < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.from_numpy(np.ascontiguousarray(mask))[None],
            "index": index,
        }


class CachedPairDataset(Dataset):
    """Items as :class:`LabelShardDataset`, cut from a :class:`~engine.sod.cache.PairCache` (no file reads).

    Args:
        cache: decoded pairs.
        size_hw: output size.
        augment: random crop / flip / jitter for training; ``None`` = resize only (validation).
    """

    def __init__(self, cache: PairCache, size_hw: tuple[int, int], augment: AugmentParams | None = None):
        self.cache, self.size_hw, self.augment = cache, tuple(size_hw), augment

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> dict:
        image, mask = self.cache.images[index], self.cache.masks[index]
        if self.augment is None:
            image, mask = resize_pair(image, mask, self.size_hw)
            image, mask = image.astype(np.float32) / 255.0, mask.astype(np.float32) / 255.0
        else:
            # torch's generator is seeded per run and per loader worker, so views are reproducible
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))
            image, mask = augment_pair(image, mask, self.size_hw, self.augment, rng)
        return {
            "image": torch.from_numpy(image.transpose(2, 0, 1).copy()),
            "mask": torch.from_numpy(mask)[None],
            "index": index,
        }


def rows_fingerprint(rows: list[dict]) -> str:
    """Hash of the training data's identity: image ids and their masks (not paths)."""
    digest = hashlib.blake2b(digest_size=16)
    for row in rows:
        digest.update(row["image_id"].encode())
        digest.update(row["mask_rle"].encode())
    return digest.hexdigest()
