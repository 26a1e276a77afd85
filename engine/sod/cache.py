"""Decode every training pair once: images and masks resized to a fixed size and kept as ``uint8``.

Reading a JPEG and decoding an RLE mask costs far more than a small network's training step on a
CPU, so doing it every epoch starves the model. :class:`PairCache` decodes each pair once (in
threads: PIL and OpenCV release the GIL), resizes it to ``size_hw`` and keeps it as ``uint8``:
``N * H * W * 4`` bytes (3000 pairs at 176x176: 372 MB). Above ``max_mb`` the arrays live in a
memory-mapped temporary file instead of RAM, so memory stays bounded for any data set size.
A pair that cannot be read is left out and reported in ``errors`` (one bad image never stops a run).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from engine.images import ImageReadError, read_rgb
from engine.masks import decode_rle


def decode_pair(row: dict, size_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One label row -> image ``(H, W, 3) uint8`` and mask ``(H, W) uint8`` (0..255, soft edges) at ``size_hw``.

    Raises:
        ValueError: unreadable image, or an image whose size differs from the label's.
    """
    image = read_rgb(row["path"])
    label_hw = (int(row["height"]), int(row["width"]))
    if image.shape[:2] != label_hw:
        raise ValueError(f"{row['path']}: image is {image.shape[:2]}, its label is {label_hw}")
    mask = decode_rle(row["mask_rle"], label_hw).astype(np.uint8) * 255
    height, width = size_hw
    return (cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA),
            cv2.resize(mask, (width, height), interpolation=cv2.INTER_AREA))


class PairCache:
    """``images (N, H, W, 3) uint8`` and ``masks (N, H, W) uint8`` of the readable ``rows``.

    Args:
        rows: label rows (``path``, ``height``, ``width``, ``mask_rle``), e.g. from ``read_label_rows``.
        size_hw: the stored size (training crops are cut from it).
        workers: decoding threads.
        max_mb: RAM budget; larger caches go to a memory-mapped file in ``spill_dir`` (default: temp dir).
        log: receives one message per pair left out.

    Attributes: ``rows`` (the rows kept, aligned with the arrays), ``errors`` (messages of those left
    out), ``on_disk`` (whether the arrays are memory-mapped).
    """

    def __init__(self, rows: list[dict], size_hw: tuple[int, int], workers: int = 2, max_mb: float = 4096,
                 spill_dir: str | Path | None = None, log: Callable[[str], None] | None = None):
        if len(size_hw) != 2 or min(size_hw) < 1:
            raise ValueError(f"PairCache: size_hw must be two positive sizes, got {size_hw}")
        self.size_hw = (int(size_hw[0]), int(size_hw[1]))
        height, width = self.size_hw
        count = len(rows)
        self.on_disk = count * height * width * 4 / 2**20 > max_mb
        self._spill = None
        images, masks = self._allocate(count, spill_dir)
        keep, self.errors = [], []
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for index, outcome in enumerate(pool.map(self._decode_or_error, rows)):
                if isinstance(outcome, str):
                    self.errors.append(outcome)
                    if log is not None:
                        log(f"left out of training: {outcome}")
                    continue
                images[len(keep)], masks[len(keep)] = outcome
                keep.append(index)
        self.rows = [rows[i] for i in keep]
        self.images, self.masks = images[:len(keep)], masks[:len(keep)]

    def _allocate(self, count: int, spill_dir: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
        height, width = self.size_hw
        if not self.on_disk:
            return np.zeros((count, height, width, 3), np.uint8), np.zeros((count, height, width), np.uint8)
        self._spill = tempfile.TemporaryDirectory(prefix="sodforge-cache-", dir=spill_dir)
        folder = Path(self._spill.name)
        images = np.lib.format.open_memmap(folder / "images.npy", "w+", np.uint8, (count, height, width, 3))
        masks = np.lib.format.open_memmap(folder / "masks.npy", "w+", np.uint8, (count, height, width))
        return images, masks

    def _decode_or_error(self, row: dict) -> tuple[np.ndarray, np.ndarray] | str:
        try:
            return decode_pair(row, self.size_hw)
        except (ValueError, ImageReadError) as err:
            return str(err)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        return int(self.images.nbytes + self.masks.nbytes)
