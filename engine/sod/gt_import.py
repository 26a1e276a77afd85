"""Import a folder of true masks (sample set ``masks/``, DUTS-TR ``DUTS-TR-Mask/``, ECSSD ``gt/``) as label shards.

The shards have the labelling schema (:data:`engine.labeling.record.LABEL_SCHEMA`), so training and
evaluation read ground truth and pseudo-labels the same way. Masks are matched to images by file
stem and binarised at ``> 127``; the run id is ``gt-<hash of the image and mask files>``, so the same
folders always give the same run, and shards are skipped when their fingerprint is current.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from engine.images import IMAGE_SUFFIXES, ImageReadError, file_content_id
from engine.images.io import read_size_hw
from engine.images.layout import find_layout
from engine.images.manifest import scan_image_files
from engine.images.paths import shard_root, to_stored
from engine.labeling.record import PseudoLabel, labels_to_table
from engine.masks import connected_components, encode_rle, mask_area_fraction
from engine.storage import chunk_ids, fingerprint, shard_is_current, shard_name, write_table_atomic


@dataclass(frozen=True)
class ImportResult:
    run_id: str
    run_dir: Path
    shard_paths: list[Path]
    counts: dict[str, int]


def find_mask(masks_dir: Path, stem: str) -> Path | None:
    """The mask file named ``<stem>.<image suffix>`` in ``masks_dir`` (PNG preferred), or None."""
    candidates = sorted(p for p in masks_dir.glob(f"{stem}.*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return min(candidates, key=lambda p: p.suffix.lower() != ".png") if candidates else None


def read_mask(path: Path, size_hw: tuple[int, int]) -> np.ndarray:
    """``(H, W) bool`` mask (grey value > 127); ValueError if unreadable or not of ``size_hw``."""
    try:
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"))
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{path}: unreadable mask ({err})") from err
    if grey.shape != tuple(size_hw):
        raise ValueError(f"{path}: mask is {grey.shape}, image is {tuple(size_hw)}")
    return grey > 127


def _label(image: Path, masks_dir: Path, run_id: str, shard: str, root: Path) -> PseudoLabel:
    image_id, path = file_content_id(image), to_stored(image.resolve(), root)  # relative: clones match
    mask_path = find_mask(masks_dir, image.stem)
    try:
        if mask_path is None:
            raise ValueError(f"{image}: no mask named {image.stem}.* in {masks_dir}")
        size_hw = read_size_hw(image)
        mask = read_mask(mask_path, size_hw)
    except (ValueError, ImageReadError) as err:
        return PseudoLabel(image_id, path, run_id, shard, "error", error=str(err))
    common = {"height": size_hw[0], "width": size_hw[1], "quality_score": 1.0}
    if not mask.any():
        return PseudoLabel(image_id, path, run_id, shard, "no_object", **common)
    return PseudoLabel(
        image_id, path, run_id, shard, "ok", mask_rle=encode_rle(mask), mask_area_frac=mask_area_fraction(mask),
        components=connected_components(mask), **common,
    )


def resolve_folders(images: str | Path, masks: str | Path | None) -> tuple[Path, Path]:
    """Image and mask folders: ``masks`` if given, else found by :func:`engine.images.layout.find_layout`
    (``DUTS-TR-Image/`` + ``DUTS-TR-Mask/``, ``images/`` + ``masks/`` or ``gt/``...)."""
    layout = find_layout(images, "images")
    if masks is None:
        layout.require("images", "masks")
        return layout.images, layout.masks
    masks = Path(masks)
    if layout.images is None or not masks.is_dir():
        raise ValueError(f"need an image folder and a mask folder; got {layout.images or images} and {masks}")
    return layout.images, masks


def import_mask_folder(images: str | Path, out_dir: str | Path, masks: str | Path | None = None,
                       shard_size: int = 512) -> ImportResult:
    """Write label shards ``out_dir/run=gt-<hash>/shard-NNNNN.parquet`` from true masks.

    Images without a readable mask of the same size get ``status='error'`` with the reason; empty
    masks get ``no_object``.
    """
    image_root, masks_dir = resolve_folders(images, masks)
    files = scan_image_files(image_root)
    if not files:
        raise ValueError(f"{image_root}: no images")
    mask_files = [find_mask(masks_dir, f.stem) for f in files]
    identity = [(file_content_id(f), file_content_id(m) if m else None) for f, m in zip(files, mask_files, strict=True)]
    run_id = f"gt-{fingerprint(identity, length=6)}"
    run_dir = Path(out_dir) / f"run={run_id}"
    counts = {"ok": 0, "no_object": 0, "error": 0}
    paths = []
    for index, chunk in enumerate(chunk_ids([str(f) for f in files], shard_size)):
        shard = shard_name(index)
        path = run_dir / f"{shard}.parquet"
        shard_fp = fingerprint(run_id, chunk, "stored-paths")
        if shard_is_current(path, shard_fp):
            statuses = pq.read_table(path, columns=["status"])["status"].to_pylist()
        else:
            labels = [_label(Path(f), masks_dir, run_id, shard, shard_root(path.resolve())) for f in chunk]
            write_table_atomic(labels_to_table(labels), path, shard_fp)
            statuses = [label.status for label in labels]
        for status in statuses:
            counts[status] += 1
        paths.append(path)
    return ImportResult(run_id, run_dir, paths, counts)
