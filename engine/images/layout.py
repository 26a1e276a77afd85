"""Where a data set keeps its images and its masks: the usual benchmark layouts, found without flags.

One function, :func:`find_layout`, used by mask import, training, prediction and evaluation.
Recognised, given the data set's folder (or one of its two sub-folders):

- DUTS: ``DUTS-TE-Image/`` + ``DUTS-TE-Mask/`` (any ``<prefix>-Image`` / ``<prefix>-Mask`` pair);
- ECSSD / HKU-IS / PASCAL-S / PySODEvalToolkit packs: ``images/`` (``image``, ``Image``, ``Imgs``,
  ``imgs``, ``img``, ``JPEGImages``) + ``masks/`` (``mask``, ``Mask``, ``gt``, ``GT``, ``GTs``,
  ``ground_truth_mask``, ``groundtruth``);
- images directly in the folder with a mask sub-folder (``set/*.jpg`` + ``set/masks/``).

Folder names are compared case-insensitively. Two ``<prefix>-Image`` / ``<prefix>-Mask`` pairs in
one folder (e.g. ``DUTS-TR-*`` and ``DUTS-TE-*``) are ambiguous: an error names them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.images.io import IMAGE_SUFFIXES

IMAGE_DIR_NAMES = ("images", "image", "imgs", "img", "jpegimages", "im")
MASK_DIR_NAMES = ("masks", "mask", "gt", "gts", "ground_truth_mask", "groundtruth", "ground_truth")
_IMAGE_SUFFIX = re.compile(r"^(?P<prefix>.+?)[-_ ](?:images?|imgs?)$", re.IGNORECASE)
_MASK_SUFFIX = re.compile(r"^(?P<prefix>.+?)[-_ ](?:masks?|gts?)$", re.IGNORECASE)

Role = Literal["images", "masks"]


@dataclass(frozen=True)
class PairLayout:
    """A data set: its folder, its image and mask folders (``None`` when absent) and its name."""

    root: Path
    images: Path | None
    masks: Path | None

    @property
    def name(self) -> str:
        """The data set's name: its folder's name (``DUTS-TE-1k``, ``ECSSD``)."""
        return self.root.resolve().name

    def require(self, *roles: Role) -> PairLayout:
        """``self``, or ValueError naming the folder and what was looked for when a role is missing."""
        for role in roles:
            if getattr(self, role) is None:
                wanted = "-Image" if role == "images" else "-Mask"
                names = IMAGE_DIR_NAMES if role == "images" else MASK_DIR_NAMES
                raise ValueError(f"{self.root}: no {role} folder found (looked for *{wanted} and {', '.join(names)}; "
                                 f"case-insensitive); name it explicitly")
        return self


def _kind(folder: Path) -> tuple[str | None, str]:
    """``("images" | "masks" | None, prefix)`` of a folder by its name."""
    name = folder.name.lower()
    if name in IMAGE_DIR_NAMES:
        return "images", ""
    if name in MASK_DIR_NAMES:
        return "masks", ""
    for kind, pattern in (("images", _IMAGE_SUFFIX), ("masks", _MASK_SUFFIX)):
        match = pattern.match(folder.name)
        if match:
            return kind, match.group("prefix").lower()
    return None, ""


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in folder.iterdir())


def _children(folder: Path) -> dict[str, list[tuple[str, Path]]]:
    found: dict[str, list[tuple[str, Path]]] = {"images": [], "masks": []}
    for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        kind, prefix = _kind(child)
        if kind:
            found[kind].append((prefix, child))
    return found


def _preferred(candidates: list[tuple[str, Path]], names: tuple[str, ...]) -> Path:
    """The plain-named folder earliest in ``names``, else the first by name."""
    return min(candidates, key=lambda c: (names.index(c[1].name.lower()) if c[1].name.lower() in names else len(names),
                                          c[1].name))[1]


def _pair(folder: Path, found: dict[str, list[tuple[str, Path]]]) -> PairLayout:
    images, masks = found["images"], found["masks"]
    pairs = sorted({p for p, _ in images if p} & {p for p, _ in masks if p})
    if len(pairs) > 1:
        raise ValueError(f"{folder}: holds several data sets ({', '.join(pairs)}: *-Image and *-Mask folders); "
                         f"pass one data set's folder")
    if pairs:
        prefix = pairs[0]
        return PairLayout(folder, next(p for q, p in images if q == prefix), next(p for q, p in masks if q == prefix))
    image_dir = _preferred(images, IMAGE_DIR_NAMES) if images else (folder if _has_images(folder) else None)
    mask_dir = _preferred(masks, MASK_DIR_NAMES) if masks else None
    return PairLayout(folder, image_dir, mask_dir)


def _sibling(folder: Path, kind: Role) -> Path | None:
    """The ``kind`` folder next to ``folder`` (same ``<prefix>-`` when it has one)."""
    _, prefix = _kind(folder)
    candidates = _children(folder.parent)[kind]
    same = [c for c in candidates if c[0] == prefix] if prefix else candidates
    names = IMAGE_DIR_NAMES if kind == "images" else MASK_DIR_NAMES
    return _preferred(same, names) if same else None


def find_layout(path: str | Path, role: Role = "images") -> PairLayout:
    """Find the image and mask folders of the data set at ``path``.

    Args:
        path: the data set's folder (``DUTS-TE-1k/``, ``ECSSD/``), or its image or mask folder.
        role: what ``path`` is when it is neither a data set folder nor a recognisably named
            sub-folder: ``"images"`` (``import-masks IMAGES``) or ``"masks"`` (``evaluate --gt MASKS``).

    Returns:
        A :class:`PairLayout`; a missing part is ``None`` (``.require(...)`` turns that into an error).

    Raises:
        ValueError: ``path`` is not a folder, or it holds several data sets.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: folder not found")
    found = _children(path)
    if found["images"] or found["masks"]:
        return _pair(path, found)
    kind, _ = _kind(path)
    kind = kind or role
    if kind == "masks":
        images = _sibling(path, "images") or (path.parent if _has_images(path.parent) else None)
        return PairLayout(path.parent if images else path, images, path)
    masks = _sibling(path, "masks")
    return PairLayout(path.parent if masks else path, path, masks)
