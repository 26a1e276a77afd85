"""Image manifests: which images a set holds, identified by content, split into shards.

A manifest shard is one Parquet file (``images/shard-NNNNN.parquet``) listing a fixed set of image
ids with their path, size and the paths of extra modalities (``depth/``, ``thermal/``, ``flow/``
folders beside the images, matched by file stem). Ingest is incremental: unchanged files are not
re-hashed, existing shards keep their ids, new images fill the last shard and then new shards.

Shards hold only what identifies the set, never where or when it was scanned: paths are stored
relative to the workdir (:mod:`engine.images.paths`; :func:`manifest_rows` resolves them), and the
file sizes and mtimes that let ingest skip re-hashing live in a side file beside the manifest
folder (``catalog/.images-stat.parquet``). So the same images give byte-identical shards in every
clone of a project, which DVC needs to call them unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from engine.images.ids import file_content_id
from engine.images.io import IMAGE_SUFFIXES, ImageReadError, read_size_hw
from engine.images.paths import resolve_stored, shard_root, to_stored
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
        ("depth_path", pa.string()),
        ("thermal_path", pa.string()),
        ("flow_path", pa.string()),
        ("duplicate_paths", pa.list_(pa.string())),
        ("header_error", pa.string()),
    ]
)


# Per file (absolute path): what ingest learnt, and the size/mtime that say it is still true.
STAT_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("image_id", pa.string()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("header_error", pa.string()),
    ]
)
PATH_COLUMNS = ("path", "depth_path", "thermal_path", "flow_path")


@dataclass(frozen=True)
class IngestResult:
    """What ``ingest`` did: the manifest shard files and counts."""

    shard_paths: list[Path]
    images: int
    new_images: int
    duplicates: int
    rewritten_shards: int


def images_root(set_dir: Path) -> Path:
    """``<set>/images`` when it exists, else ``<set>`` itself."""
    return set_dir / "images" if (set_dir / "images").is_dir() else set_dir


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


def _modality_paths(set_dir: Path, stem: str, root: Path) -> dict[str, str | None]:
    paths: dict[str, str | None] = {}
    for modality in MODALITIES:
        folder = set_dir / modality
        match = None
        if folder.is_dir():
            candidates = sorted(p for p in folder.glob(f"{stem}.*") if p.suffix.lower() in IMAGE_SUFFIXES)
            match = to_stored(candidates[0].resolve(), root) if candidates else None
        paths[f"{modality}_path"] = match
    return paths


def _describe(path: Path, set_dir: Path, root: Path, known: dict[str, dict]) -> tuple[dict, dict]:
    """The manifest row of ``path`` (paths stored relative to ``root``) and its stat-cache row."""
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
    row = {
        "image_id": image_id,
        "path": to_stored(key, root),
        "height": height,
        "width": width,
        "bytes": stat.st_size,
        **_modality_paths(set_dir, path.stem, root),
        "duplicate_paths": [],
        "header_error": error,
    }
    cached = {"file": key, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "image_id": image_id,
              "height": height, "width": width, "header_error": error}
    return row, cached


def stat_cache_path(manifest_dir: str | Path) -> Path:
    """``catalog/.images-stat.parquet`` for ``catalog/images``: sizes and mtimes, outside the shards."""
    manifest_dir = Path(manifest_dir)
    return manifest_dir.parent / f".{manifest_dir.name}-stat.parquet"


def load_stat_cache(manifest_dir: str | Path) -> dict[str, dict]:
    """What an earlier ingest learnt per file (absolute path -> row of :data:`STAT_SCHEMA`), or {}."""
    try:
        rows = read_table(stat_cache_path(manifest_dir)).to_pylist()
    except ValueError:  # missing or unreadable: everything is hashed again
        return {}
    return {row["file"]: row for row in rows}


def manifest_rows(manifest_path: str | Path) -> list[dict]:
    """The rows of one manifest shard with their paths resolved to usable (absolute) file paths."""
    root = shard_root(manifest_path)
    rows = read_table(manifest_path).to_pylist()
    for row in rows:
        for column in PATH_COLUMNS:
            row[column] = resolve_stored(row.get(column), root)
        row["duplicate_paths"] = [resolve_stored(p, root) for p in row.get("duplicate_paths") or []]
    return rows


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
    """Scan ``set_dir`` and write/refresh manifest shards into ``manifest_dir``.

    Paths are stored relative to the manifest's root (the workdir for ``WORKDIR/catalog/images``,
    see :func:`engine.images.paths.shard_root`); read them back with :func:`manifest_rows`.
    """
    set_dir, manifest_dir = Path(set_dir).resolve(), Path(manifest_dir)
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    root = shard_root(manifest_dir.resolve() / "shard.parquet")
    existing = read_manifest(manifest_dir) if manifest_dir.is_dir() else []
    known = load_stat_cache(manifest_dir)
    files = scan_image_files(images_root(set_dir))
    described = [_describe(path, set_dir, root, known) for path in files]
    current, duplicates = _unique_by_id(row for row, _ in described)
    stats = [cached for _, cached in described]

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
    if {s["file"]: s for s in stats} != known:
        write_table_atomic(pa.Table.from_pylist(stats, schema=STAT_SCHEMA), stat_cache_path(manifest_dir))
    previous_ids = {row["image_id"] for _, rows in existing for row in rows}
    fresh = sum(1 for image_id in current if image_id not in previous_ids)
    return IngestResult(paths, len(current), fresh, duplicates, written)
