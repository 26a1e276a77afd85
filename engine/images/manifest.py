"""Image manifests: which images a set holds, identified by content, split into shards.

A manifest shard is one Parquet file (``images/shard-NNNNN.parquet``) listing a fixed set of image
ids with their path, size and the paths of extra modalities (``depth/``, ``thermal/``, ``flow/``
folders beside the images, matched by file stem). Ingest is incremental: unchanged files are not
re-hashed, existing shards keep their ids, new images fill the last shard and then new shards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from engine.images.ids import file_content_id
from engine.images.io import IMAGE_SUFFIXES, ImageReadError, read_size_hw
from engine.storage import chunk_ids, fingerprint, read_table, shard_name, write_table_atomic

MODALITIES = ("depth", "thermal", "flow")
NON_IMAGE_DIRS = frozenset({*MODALITIES, "masks", "mask", "gt", "Mask", "GT"})

MANIFEST_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("path", pa.string()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("depth_path", pa.string()),
        ("thermal_path", pa.string()),
        ("flow_path", pa.string()),
        ("duplicate_paths", pa.list_(pa.string())),
        ("header_error", pa.string()),
    ]
)


@dataclass(frozen=True)
class IngestResult:
    """What ``ingest`` did: the manifest shard files and counts."""

    shard_paths: list[Path]
    images: int
    new_images: int
    duplicates: int
    rewritten_shards: int


def images_root(set_dir: Path) -> Path:
    """The set's image folder (``<set>/images``, ``<set>/DUTS-TE-Image``...: :func:`find_layout`), else ``<set>``."""
    from engine.images.layout import find_layout

    try:
        found = find_layout(set_dir, "images").images if Path(set_dir).is_dir() else None
    except ValueError:  # several data sets in one folder: take the folder as it is
        found = None
    return found or set_dir


def scan_image_files(root: Path) -> list[Path]:
    """Image files under ``root`` (by suffix), sorted, skipping modality and mask folders."""
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory of images")
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root).parts
        if any(part in NON_IMAGE_DIRS or part.startswith(".") for part in relative):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.append(path)
    return sorted(found)


def _modality_paths(set_dir: Path, stem: str) -> dict[str, str | None]:
    paths: dict[str, str | None] = {}
    for modality in MODALITIES:
        folder = set_dir / modality
        match = None
        if folder.is_dir():
            candidates = sorted(p for p in folder.glob(f"{stem}.*") if p.suffix.lower() in IMAGE_SUFFIXES)
            match = str(candidates[0].resolve()) if candidates else None
        paths[f"{modality}_path"] = match
    return paths


def _describe(path: Path, set_dir: Path, known: dict[str, dict]) -> dict:
    stat = path.stat()
    key = str(path.resolve())
    previous = known.get(key)
    if previous and previous["bytes"] == stat.st_size and previous["mtime_ns"] == stat.st_mtime_ns:
        image_id, height, width, error = previous["image_id"], previous["height"], previous["width"], previous["header_error"]
    else:
        image_id = file_content_id(path)
        try:
            height, width = read_size_hw(path)
            error = None
        except ImageReadError as err:
            height = width = None
            error = str(err)
    return {
        "image_id": image_id,
        "path": key,
        "height": height,
        "width": width,
        "bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        **_modality_paths(set_dir, path.stem),
        "duplicate_paths": [],
        "header_error": error,
    }


def read_manifest(manifest_dir: Path) -> list[tuple[Path, list[dict]]]:
    """Existing manifest shards as ``(path, rows)``, in shard order."""
    return [(path, read_table(path).to_pylist()) for path in sorted(manifest_dir.glob("shard-*.parquet"))]


def _unique_by_id(rows: Iterable[dict]) -> tuple[dict[str, dict], int]:
    by_id: dict[str, dict] = {}
    duplicates = 0
    for row in rows:
        first = by_id.get(row["image_id"])
        if first is None:
            by_id[row["image_id"]] = row
        else:
            first["duplicate_paths"].append(row["path"])
            duplicates += 1
    return by_id, duplicates


def ingest(set_dir: str | Path, manifest_dir: str | Path, shard_size: int) -> IngestResult:
    """Scan ``set_dir`` and write/refresh manifest shards into ``manifest_dir``."""
    set_dir, manifest_dir = Path(set_dir).resolve(), Path(manifest_dir)
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    existing = read_manifest(manifest_dir) if manifest_dir.is_dir() else []
    known = {row["path"]: row for _, rows in existing for row in rows}
    files = scan_image_files(images_root(set_dir))
    current, duplicates = _unique_by_id(_describe(path, set_dir, known) for path in files)

    shards: list[list[str]] = []
    placed: set[str] = set()
    for _, rows in existing:
        ids = [row["image_id"] for row in rows if row["image_id"] in current and row["image_id"] not in placed]
        placed.update(ids)
        if ids:
            shards.append(ids)
    new_ids = [image_id for image_id in current if image_id not in placed]
    if shards and new_ids and len(shards[-1]) < shard_size:
        room = shard_size - len(shards[-1])
        shards[-1] = shards[-1] + new_ids[:room]
        new_ids = new_ids[room:]
    shards.extend(chunk_ids(new_ids, shard_size))

    old_fingerprints = {path.name: fingerprint(rows) for path, rows in existing}
    written, paths = 0, []
    for index, ids in enumerate(shards):
        rows = [current[image_id] for image_id in ids]
        path = manifest_dir / f"{shard_name(index)}.parquet"
        if old_fingerprints.get(path.name) != fingerprint(rows):
            write_table_atomic(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), path, fingerprint(ids))
            written += 1
        paths.append(path)
    for stale in sorted(manifest_dir.glob("shard-*.parquet"))[len(shards) :]:
        stale.unlink()
    previous_ids = {row["image_id"] for _, rows in existing for row in rows}
    fresh = sum(1 for image_id in current if image_id not in previous_ids)
    return IngestResult(paths, len(current), fresh, duplicates, written)
