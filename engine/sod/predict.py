"""Saliency maps from a trained SODNet, written as PNGs (0-255, original image size, same stems).

The output folder is what ``sodforge evaluate --pred DIR --gt DIR`` scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from engine.images import ImageReadError, read_rgb
from engine.images.manifest import images_root, scan_image_files
from engine.masks import decode_rle
from engine.sod.data import Split, find_label_shards, read_label_rows, select_split
from engine.sod.model import SODNet, load_model


@dataclass(frozen=True)
class PredictResult:
    out_dir: Path
    written: int
    errors: list[str]


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@torch.no_grad()
def predict_probs(model: SODNet, images: list[np.ndarray], device: torch.device | None = None) -> list[np.ndarray]:
    """RGB ``(H, W, 3) uint8`` images -> saliency ``(H, W) float32 in [0, 1]`` at each image's own size.

    Images are resized to ``model.config.size_hw`` for the network and the maps resized back.
    """
    device = device or next(model.parameters()).device
    height, width = model.config.size_hw
    batch = np.stack([cv2.resize(im, (width, height), interpolation=cv2.INTER_AREA) for im in images])
    tensor = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float() / 255.0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    with autocast:
        logits = model(tensor).logits
    probs = torch.sigmoid(logits.float()).squeeze(1).cpu().numpy()
    return [cv2.resize(p, (im.shape[1], im.shape[0]), interpolation=cv2.INTER_LINEAR) for p, im in zip(probs, images, strict=True)]


def write_map(prob: np.ndarray, path: Path) -> None:
    """Write ``(H, W) float in [0, 1]`` as an 8-bit greyscale PNG (temp name, then replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    Image.fromarray(np.clip(np.round(prob * 255.0), 0, 255).astype(np.uint8), mode="L").save(tmp)
    tmp.replace(path)


def _batches(paths: Iterable[Path], size: int) -> Iterator[list[Path]]:
    batch: list[Path] = []
    for path in paths:
        batch.append(path)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_paths(model: SODNet, paths: list[Path], out_dir: str | Path, batch_size: int = 8,
                  device: str = "auto") -> PredictResult:
    """Write ``out_dir/<stem>.png`` for every image in ``paths``; unreadable images are listed, not fatal."""
    out, target = Path(out_dir), pick_device(device)
    model = model.to(target).eval()
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise ValueError(f"{out}: several images share a file stem; predictions would overwrite each other")
    written, errors = 0, []
    for batch in _batches(paths, batch_size):
        loaded = []
        for path in batch:
            try:
                loaded.append((path, read_rgb(path)))
            except ImageReadError as err:
                errors.append(str(err))
        if not loaded:
            continue
        for (path, _), prob in zip(loaded, predict_probs(model, [im for _, im in loaded], target), strict=True):
            write_map(prob, out / f"{path.stem}.png")
            written += 1
    return PredictResult(out, written, errors)


def label_image_paths(labels: str | Path, split: Split, val_fraction: float, seed: int = 0,
                      run_id: str | None = None) -> list[Path]:
    """Image paths of one split of a label run (same split rule as training)."""
    rows = read_label_rows(find_label_shards(labels, run_id))
    return [Path(r["path"]) for r in select_split(rows, split, val_fraction, seed)]


def predict(model_path: str | Path, out_dir: str | Path, images: str | Path | None = None,
            labels: str | Path | None = None, split: Split = "val", val_fraction: float = 0.25, seed: int = 0,
            run_id: str | None = None, batch_size: int = 8, device: str = "auto") -> PredictResult:
    """Predict a folder of ``images`` or one ``split`` of a label run into ``out_dir``."""
    if (images is None) == (labels is None):
        raise ValueError("predict: give exactly one of images (a folder) or labels (label shards)")
    if images is not None:
        paths = scan_image_files(images_root(Path(images)))
    else:
        paths = label_image_paths(labels, split, val_fraction, seed, run_id)
    if not paths:
        raise ValueError(f"predict: no images found in {images or labels} (split {split!r})")
    return predict_paths(load_model(model_path), paths, out_dir, batch_size, device)


def write_split_masks(labels: str | Path, out_dir: str | Path, split: Split = "val", val_fraction: float = 0.25,
                      seed: int = 0, run_id: str | None = None) -> int:
    """Write the label masks of one split as ``<stem>.png`` (0/255, original size); returns the count.

    Pairs with the predictions of the same split, so ``sodforge evaluate --pred P --gt M`` scores
    exactly the held-out images (for a true-mask import these are the true masks).
    """
    rows = select_split(read_label_rows(find_label_shards(labels, run_id)), split, val_fraction, seed)
    out = Path(out_dir)
    for row in rows:
        mask = decode_rle(row["mask_rle"], (int(row["height"]), int(row["width"])))
        write_map(mask.astype(np.float32), out / f"{Path(row['path']).stem}.png")
    return len(rows)
