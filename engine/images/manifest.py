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

import errno
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISDIR, S_ISFIFO, S_ISREG, S_ISSOCK

import pyarrow as pa

from engine.images.ids import content_id, file_content_id
from engine.images.io import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    UNSUPPORTED_IMAGE_SUFFIXES,
    ImageReadError,
    read_problem,
    read_size_hw,
)
from engine.images.paths import resolve_stored, shard_root, to_stored
from engine.storage import chunk_ids, fingerprint, read_table, shard_name, write_table_atomic

log = logging.getLogger(__name__)
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
class SkippedFile:
    """A file under the image folder that is not ingested, and why (``not an image (.mp4)``...)."""

    path: str
    reason: str


@dataclass(frozen=True)
class FolderScan:
    """Image files found under a folder (sorted) and the files passed over, each with its reason."""

    images: list[Path]
    skipped: list[SkippedFile] = field(default_factory=list)


@dataclass(frozen=True)
class IngestResult:
    """What ``ingest`` did: the manifest shard files, counts, and the files it passed over.

    ``unreadable`` counts images whose header could not be read (they become ``status = error``
    rows naming the file); ``skipped`` lists files that are not images at all (no row).
    """

    shard_paths: list[Path]
    images: int
    new_images: int
    duplicates: int
    rewritten_shards: int
    unreadable: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)


def images_root(set_dir: Path) -> Path:
    """The set's image folder (``<set>/images``, ``<set>/DUTS-TE-Image``...: :func:`find_layout`), else ``<set>``."""
    from engine.images.layout import find_layout

    try:
        found = find_layout(set_dir, "images").images if Path(set_dir).is_dir() else None
    except ValueError:  # several data sets in one folder: take the folder as it is
        found = None
    return found or set_dir


def _skip_reason(path: Path) -> str | None:
    """Why the entry ``path`` is not an image file we read (``None``: it is one)."""
    try:
        info = path.stat()  # follows symlinks: a link to an image is an image
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symlink loop"
        if err.errno == errno.ENOENT and path.is_symlink():
            return f"broken symlink (target {os.readlink(path)} missing)"
        return f"cannot read ({read_problem(err)})"
    suffix = path.suffix.lower()
    if S_ISDIR(info.st_mode):
        return "symlink to a folder (not followed)"
    if not S_ISREG(info.st_mode):
        kind = "FIFO" if S_ISFIFO(info.st_mode) else "socket" if S_ISSOCK(info.st_mode) else "device"
        return f"not a regular file ({kind})"
    if suffix in UNSUPPORTED_IMAGE_SUFFIXES:
        return f"unsupported image format ({suffix}); convert it to JPEG or PNG"
    if suffix not in IMAGE_SUFFIXES:
        return f"not an image ({suffix or 'no suffix'})"
    return None


def _walk(root: Path) -> Iterator[tuple[Path, str | None]]:
    """``(path, skip reason or None)`` for the entries under ``root``, folder by folder, sorted."""
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory of images")
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        wanted = [d for d in dirs if not d.startswith(".") and d not in NON_IMAGE_DIRS]
        dirs[:] = sorted(d for d in wanted if not (here / d).is_symlink())
        links = [d for d in wanted if (here / d).is_symlink()]
        for name in sorted([*files, *links]):
            if not name.startswith("."):
                yield here / name, _skip_reason(here / name)


def scan_folder(root: Path) -> FolderScan:
    """Image files under ``root`` and the files passed over with their reasons (symlink loops, FIFOs,
    videos, unsupported formats...). Hidden entries and modality / mask folders are left out silently;
    symlinked folders are not followed (reported)."""
    images, skipped = [], []
    for path, reason in _walk(root):
        if reason is None:
            images.append(path)
        else:
            skipped.append(SkippedFile(str(path), reason))
    return FolderScan(sorted(images), skipped)


def check_has_images(set_dir: str | Path) -> None:
    """Raise ValueError (naming the folder and what it holds) unless ``set_dir`` has an image file;
    stops at the first image, so it is cheap on big folders."""
    root = images_root(Path(set_dir))
    if not any(reason is None for _, reason in _walk(root)):
        raise ValueError(_no_images_message(root, scan_folder(root).skipped))


def scan_image_files(root: Path) -> list[Path]:
    """Image files under ``root`` (by suffix), sorted, skipping modality and mask folders."""
    return scan_folder(root).images


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


def _identify(path: Path, key: str, max_pixels: int) -> tuple[str, int | None, int | None, str | None]:
    """``(image_id, height, width, header_error)``; a file that cannot be read (EIO, permissions)
    gets an id from its path and the error, so it becomes a ``status = error`` row naming it."""
    try:
        image_id = file_content_id(path)
    except OSError as err:
        return content_id(f"unreadable:{key}".encode()), None, None, str(ImageReadError(path, read_problem(err)))
    try:
        height, width = read_size_hw(path, max_pixels)
    except ImageReadError as err:
        return image_id, None, None, str(err)
    return image_id, height, width, None


def _describe(path: Path, set_dir: Path, root: Path, known: dict[str, dict],
              max_pixels: int = MAX_PIXELS) -> tuple[dict, dict]:
    """The manifest row of ``path`` (paths stored relative to ``root``) and its stat-cache row."""
    stat = path.stat()
    key = str(path.resolve())
    previous = known.get(key)
    reusable = (previous and previous["header_error"] is None and previous["height"] * previous["width"] <= max_pixels
                and previous["bytes"] == stat.st_size and previous["mtime_ns"] == stat.st_mtime_ns)
    if reusable:  # unchanged and fine: no re-hash (files with header errors are looked at again)
        image_id, height, width, error = previous["image_id"], previous["height"], previous["width"], None
    else:
        image_id, height, width, error = _identify(path, key, max_pixels)
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


def _readable_manifest(manifest_dir: Path) -> list[tuple[Path, list[dict] | None]]:
    """Like :func:`read_manifest`, but a corrupt shard gives ``None`` rows (it is rebuilt) instead of an error."""
    shards: list[tuple[Path, list[dict] | None]] = []
    for path in sorted(manifest_dir.glob("shard-*.parquet")) if manifest_dir.is_dir() else []:
        try:
            shards.append((path, read_table(path).to_pylist()))
        except ValueError as err:
            log.warning("%s; rebuilding it", err)
            shards.append((path, None))
    return shards


def manifest_fingerprint(ids: list[str], rows: list[dict]) -> str:
    """Fingerprint of a manifest shard: its ids, plus which of them have a header error (so a file
    that becomes readable, or crosses ``ingest.max_pixels``, relabels its shard)."""
    errors = sorted(row["image_id"] for row in rows if row.get("header_error"))
    return fingerprint(ids, errors) if errors else fingerprint(ids)


def _no_images_message(root: Path, skipped: list[SkippedFile]) -> str:
    message = f"{root}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))} files)"
    if skipped:
        examples = "; ".join(f"{Path(s.path).name}: {s.reason}" for s in skipped[:5])
        message += f"; {len(skipped)} other files skipped ({examples}{'; ...' if len(skipped) > 5 else ''})"
    return message


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


def ingest(set_dir: str | Path, manifest_dir: str | Path, shard_size: int, max_pixels: int = MAX_PIXELS) -> IngestResult:
    """Scan ``set_dir`` and write/refresh manifest shards into ``manifest_dir``.

    Paths are stored relative to the manifest's root (the workdir for ``WORKDIR/catalog/images``,
    see :func:`engine.images.paths.shard_root`); read them back with :func:`manifest_rows`.
    Images above ``max_pixels``, unreadable files (I/O errors) and files that are not images under an
    image suffix are kept as rows with a ``header_error`` (labelling turns them into ``status = error``
    rows naming the file); other files are listed in ``IngestResult.skipped``. A folder without a
    single image file is a ValueError.
    """
    set_dir, manifest_dir = Path(set_dir).resolve(), Path(manifest_dir)
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    scan = scan_folder(images_root(set_dir))
    if not scan.images:
        raise ValueError(_no_images_message(images_root(set_dir), scan.skipped))
    root = shard_root(manifest_dir.resolve() / "shard.parquet")
    existing = _readable_manifest(manifest_dir)
    known = load_stat_cache(manifest_dir)
    described = [_describe(path, set_dir, root, known, max_pixels) for path in scan.images]
    current, duplicates = _unique_by_id(row for row, _ in described)
    stats = [cached for _, cached in described]

    shards: list[list[str]] = []
    placed: set[str] = set()
    for _, rows in existing:
        ids = [row["image_id"] for row in rows or [] if row["image_id"] in current and row["image_id"] not in placed]
        placed.update(ids)
        if ids or rows is None:  # a corrupt shard keeps its place (refilled below), so later shards keep theirs
            shards.append(ids)
    new_ids = [image_id for image_id in current if image_id not in placed]
    for slot in (s for s in shards if not s):
        slot.extend(new_ids[:shard_size])
        new_ids = new_ids[shard_size:]
    shards = [s for s in shards if s]
    if shards and new_ids and len(shards[-1]) < shard_size:
        room = shard_size - len(shards[-1])
        shards[-1] = shards[-1] + new_ids[:room]
        new_ids = new_ids[room:]
    shards.extend(chunk_ids(new_ids, shard_size))

    old_fingerprints = {path.name: fingerprint(rows) for path, rows in existing if rows is not None}
    written, paths = 0, []
    for index, ids in enumerate(shards):
        rows = [current[image_id] for image_id in ids]
        path = manifest_dir / f"{shard_name(index)}.parquet"
        if old_fingerprints.get(path.name) != fingerprint(rows):
            write_table_atomic(pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA), path, manifest_fingerprint(ids, rows))
            written += 1
        paths.append(path)
    for stale in sorted(manifest_dir.glob("shard-*.parquet"))[len(shards) :]:
        stale.unlink()
    if {s["file"]: s for s in stats} != known:
        write_table_atomic(pa.Table.from_pylist(stats, schema=STAT_SCHEMA), stat_cache_path(manifest_dir))
    previous_ids = {row["image_id"] for _, rows in existing for row in rows or []}
    fresh = sum(1 for image_id in current if image_id not in previous_ids)
    unreadable = sum(1 for row in current.values() if row["header_error"])
    return IngestResult(paths, len(current), fresh, duplicates, written, unreadable, scan.skipped)
