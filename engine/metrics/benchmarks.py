"""Benchmark datasets laid out DUTS-style, and the evaluation items of a prediction folder.

A dataset is a mask folder (plus an optional image folder, for overlays) whose files match the
prediction folder's by stem. Several datasets are described in one JSON file shaped like
PySODEvalToolkit's::

    {"ECSSD": {"image": {"path": "ECSSD/Image", "suffix": ".jpg"},
               "mask":  {"path": "ECSSD/Mask", "prefix": "", "suffix": ".png"},
               "pred":  {"path": "preds/ECSSD", "suffix": ".png"}}}

``image`` and ``pred`` are optional; without ``pred`` the prediction folder is ``<--pred>/<name>``.
Relative paths are taken relative to the JSON file's folder. A data set may also be given by its
folder alone, its layout found by :func:`engine.images.layout.find_layout` (``DUTS-TE-Image/`` +
``DUTS-TE-Mask/``, ``images/`` + ``masks/`` or ``gt/``...)::

    {"DUTS-TE": "DUTS-TE-1k", "ECSSD": {"root": "ECSSD", "pred": {"path": "preds/ECSSD"}}}

and a ``mask`` path naming a data set's folder resolves to its mask folder the same way.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from engine.images.layout import find_layout
from engine.metrics.evaluate import EvalItem
from engine.metrics.io import index_by_stem, read_gray_u8


@dataclass(frozen=True)
class Folder:
    """Files ``<path>/<prefix><stem><suffix>``; no suffix means any image extension."""

    path: Path
    suffix: str | None = None
    prefix: str = ""

    def index(self) -> dict[str, Path]:
        return index_by_stem(self.path, self.suffix, self.prefix)

    def expected(self, stem: str) -> str:
        return str(self.path / f"{self.prefix}{stem}{self.suffix or '.*'}")


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark: ground-truth masks, optional images and optional predictions."""

    name: str
    mask: Folder
    image: Folder | None = None
    pred: Folder | None = None


def spec_to_dict(spec: DatasetSpec) -> dict:
    """JSON-ready form of ``spec`` (what Prefect tasks take)."""
    def folder(f: Folder | None) -> dict | None:
        return None if f is None else {"path": str(f.path), "suffix": f.suffix, "prefix": f.prefix}

    return {"name": spec.name, "mask": folder(spec.mask), "image": folder(spec.image), "pred": folder(spec.pred)}


def spec_from_dict(data: dict) -> DatasetSpec:
    """Inverse of :func:`spec_to_dict`."""
    def folder(entry: dict | None) -> Folder | None:
        return None if entry is None else Folder(Path(entry["path"]), entry.get("suffix"), entry.get("prefix") or "")

    return DatasetSpec(data["name"], folder(data["mask"]), folder(data.get("image")), folder(data.get("pred")))


def _folder(entry: dict, where: str, base: Path) -> Folder:
    if not isinstance(entry, dict) or "path" not in entry:
        raise ValueError(f"{where}: expected an object with a 'path' (and optional 'prefix', 'suffix')")
    path = Path(entry["path"]).expanduser()
    return Folder(path if path.is_absolute() else base / path, entry.get("suffix") or None, entry.get("prefix") or "")


def _dataset_entry(name: str, entry: object, config: Path) -> DatasetSpec:
    """One config entry: a folder string, ``{"root": ...}``, or ``{"mask": ..., "image": ..., "pred": ...}``."""
    base = config.parent
    if isinstance(entry, str):
        entry = {"root": entry}
    if not isinstance(entry, dict) or not ("mask" in entry or "root" in entry):
        raise ValueError(f"{config}: dataset {name!r} needs a 'mask' entry or a 'root' folder")
    pred = _folder(entry["pred"], f"{config}: {name}.pred", base) if entry.get("pred") else None
    image = _folder(entry["image"], f"{config}: {name}.image", base) if entry.get("image") else None
    if "mask" in entry:
        mask = _folder(entry["mask"], f"{config}: {name}.mask", base)
        root = mask.path
    else:
        root = _folder({"path": entry["root"]}, f"{config}: {name}.root", base).path
        mask = None
    try:
        layout = find_layout(root, "masks").require("masks")
    except ValueError as err:
        raise ValueError(f"{config}: dataset {name!r}: {err}") from err
    if mask is None or layout.masks != mask.path:
        mask = Folder(layout.masks, mask.suffix if mask else None, mask.prefix if mask else "")
    if image is None and layout.images is not None and layout.images != layout.masks:
        image = Folder(layout.images)
    return DatasetSpec(name=name, mask=mask, image=image, pred=pred)


def load_dataset_config(path: str | Path) -> list[DatasetSpec]:
    """Datasets of a PySODEvalToolkit-style JSON file, in file order; ValueError naming bad entries."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON dataset config ({err})") from err
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected an object mapping dataset names to their folders")
    return [_dataset_entry(name, entry, path) for name, entry in data.items()]


def single_spec(gt: str | Path, pred: str | Path | None = None, name: str | None = None,
                images: str | Path | None = None) -> DatasetSpec:
    """A dataset from ``--gt DIR``: a mask folder, or a data set folder whose mask (and image) folders
    :func:`~engine.images.layout.find_layout` finds. The name defaults to the data set folder's name."""
    gt = Path(gt)
    if not gt.is_dir():
        raise ValueError(f"{gt}: ground-truth folder not found")
    layout = find_layout(gt, "masks").require("masks")
    image_dir = Path(images) if images else layout.images
    return DatasetSpec(name or layout.name, Folder(layout.masks), Folder(image_dir) if image_dir else None,
                       Folder(Path(pred)) if pred else None)


def with_pred_root(spec: DatasetSpec, pred_root: str | Path | None) -> DatasetSpec:
    """``spec`` with predictions at ``<pred_root>/<name>`` unless it names its own."""
    if spec.pred is not None:
        return spec
    if pred_root is None:
        raise ValueError(f"dataset {spec.name!r}: no 'pred' folder in the config and no --pred given")
    return DatasetSpec(spec.name, spec.mask, spec.image, Folder(Path(pred_root) / spec.name))


def folder_items(spec: DatasetSpec) -> tuple[list[EvalItem], list[str]]:
    """One :class:`EvalItem` per ground-truth mask of ``spec`` and the prediction stems without one.

    Raises:
        ValueError: a folder is missing, holds no masks, or two files share a stem.
    """
    if spec.pred is None:
        raise ValueError(f"dataset {spec.name!r}: no prediction folder")
    masks = spec.mask.index()
    if not masks:
        raise ValueError(f"{spec.mask.path}: no ground-truth masks (suffix {spec.mask.suffix or 'any image'})")
    if not spec.pred.path.is_dir():
        raise ValueError(f"{spec.pred.path}: prediction folder for dataset {spec.name!r} not found")
    preds = spec.pred.index()
    images = spec.image.index() if spec.image and spec.image.path.is_dir() else {}
    items = [
        EvalItem(
            stem=stem,
            gt_path=gt_path,
            pred=functools.partial(read_gray_u8, preds[stem]) if stem in preds else None,
            source=str(preds[stem]) if stem in preds else spec.pred.expected(stem),
            image_path=images.get(stem),
        )
        for stem, gt_path in sorted(masks.items())
    ]
    return items, sorted(set(preds) - set(masks))
