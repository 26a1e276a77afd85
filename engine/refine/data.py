"""Training data for refinement: images (+ a second modality) read from disk per batch, by index.

Labels are not part of the dataset: they live in a :class:`engine.refine.spr.LabelBank` indexed by
the same ``index``, because SPR rewrites them while training runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from engine.images import read_rgb

SECOND_STREAMS = ("depth", "thermal", "flow")


@dataclass(frozen=True)
class RefineItem:
    """One trainable image: ``index`` into the label bank, its file, and an optional second modality."""

    index: int
    image_id: str
    path: str
    second_path: str | None = None


def resize_rgb(rgb: np.ndarray, size: int) -> torch.Tensor:
    """``(H, W, 3) uint8`` -> ``(3, size, size)`` float in [0, 1]."""
    resized = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if min(rgb.shape[:2]) > size else cv2.INTER_LINEAR)
    return torch.from_numpy(np.ascontiguousarray(resized)).permute(2, 0, 1).float() / 255.0


def resize_mask(mask: np.ndarray, size: int) -> torch.Tensor:
    """``(H, W)`` bool/float mask -> ``(1, size, size)`` float in [0, 1] (area/bilinear resampling)."""
    mask = mask.astype(np.float32)
    interpolation = cv2.INTER_AREA if min(mask.shape) > size else cv2.INTER_LINEAR
    return torch.from_numpy(cv2.resize(mask, (size, size), interpolation=interpolation)).clamp(0, 1)[None]


def upsample_label(label: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """A ``(S, S)`` float label in [0, 1] -> ``(H, W)`` float, bilinear."""
    return cv2.resize(label.astype(np.float32), (int(size_hw[1]), int(size_hw[0])), interpolation=cv2.INTER_LINEAR)


class RefineDataset(Dataset):
    """Items -> ``{"index", "image", "second"}``; ``image``/``second`` ``(3, S, S)`` float in [0, 1].

    ``second`` is the item's second modality (grey maps repeated to 3 channels) or the RGB image
    again when it has none, so one model serves RGB, RGB-D, RGB-T and video (flow) alike.
    """

    def __init__(self, items: list[RefineItem], size: int):
        self.items, self.size = list(items), size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict:
        item = self.items[position]
        image = resize_rgb(read_rgb(item.path), self.size)
        second = resize_rgb(read_rgb(item.second_path), self.size) if item.second_path else image
        return {"index": item.index, "image": image, "second": second}


def make_loader(items: list[RefineItem], size: int, batch_size: int, num_workers: int = 0,
                shuffle: bool = False, seed: int = 0) -> DataLoader:
    """A DataLoader over ``items`` (a seeded shuffle when ``shuffle``).

    A shuffled (training) loader drops a last batch of one image: batch norm cannot train on it.
    """
    generator = torch.Generator().manual_seed(seed)
    drop_last = shuffle and len(items) > batch_size and len(items) % batch_size == 1
    return DataLoader(RefineDataset(items, size), batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      generator=generator, drop_last=drop_last, persistent_workers=False)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
