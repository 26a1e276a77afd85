"""Label one manifest shard into one label shard (Parquet, written atomically, fingerprinted).

Images are decoded on CPU threads one batch ahead of the models, so decoding overlaps inference;
at most two batches of decoded images are held in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.images import ImageReadError, read_rgb
from engine.images.paths import resolve_stored, shard_root
from engine.labeling.identity import code_identity
from engine.labeling.pipeline import ImageItem, Labeler
from engine.labeling.record import labels_to_table
from engine.params import LabelParams
from engine.storage import fingerprint, read_fingerprint, read_table, shard_is_current, write_table_atomic


@dataclass(frozen=True)
class ShardResult:
    """Outcome of one shard: its output path, whether it was skipped, and status counts."""

    path: Path
    skipped: bool
    counts: dict[str, int]


def decode(row: dict) -> ImageItem:
    """Decode one manifest row's image, turning any failure into an error item naming the file.

    The image is read from ``row["file"]`` when given (the stored ``path`` resolved, see
    :func:`engine.images.manifest.manifest_rows`); the label keeps the stored ``path``. A row whose
    header already failed at ingest (unreadable file, not an image, above ``ingest.max_pixels``) is
    an error item without another read.
    """
    if row.get("header_error"):
        return ImageItem(row["image_id"], row["path"], error=row["header_error"])
    try:
        return ImageItem(row["image_id"], row["path"], rgb=read_rgb(row.get("file") or row["path"]))
    except ImageReadError as err:
        return ImageItem(row["image_id"], row["path"], error=str(err))
    except Exception as err:  # noqa: BLE001 - any decoder failure is a per-image error, never a crash
        return ImageItem(row["image_id"], row["path"], error=f"{row['path']}: {type(err).__name__}: {err}")


def _decoded_batches(rows: list[dict], batch_size: int, workers: int) -> Iterator[list[ImageItem]]:
    batches = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        pending = [[pool.submit(decode, row) for row in batches[0]]] if batches else []
        for index in range(len(batches)):
            if index + 1 < len(batches):  # decode the next batch while the caller runs the models
                pending.append([pool.submit(decode, row) for row in batches[index + 1]])
            yield [future.result() for future in pending.pop(0)]


def shard_fingerprint(manifest_path: str | Path, identities: dict[str, Any], params: LabelParams) -> str:
    """hash(manifest shard content, model identities + runtime, label parameters that change labels,
    labelling code and library versions): see :func:`engine.labeling.pipeline.labelling_run_id`."""
    manifest_fp = read_fingerprint(manifest_path)
    if manifest_fp is None:
        raise ValueError(f"{manifest_path}: manifest shard is missing or corrupt; rerun ingest")
    return fingerprint(manifest_fp, identities, params.result_params(), code_identity())


def label_shard(
    manifest_path: str | Path,
    out_path: str | Path,
    labeler: Labeler,
    on_batch: Callable[[int], None] | None = None,
) -> ShardResult:
    """Label the images of ``manifest_path`` into ``out_path`` unless it is already current."""
    manifest_path, out_path = Path(manifest_path), Path(out_path)
    expected = shard_fingerprint(manifest_path, labeler.models.identity, labeler.params)
    if shard_is_current(out_path, expected):
        statuses = read_table(out_path).column("status").to_pylist()
        return ShardResult(out_path, True, {s: statuses.count(s) for s in set(statuses)})
    rows = read_table(manifest_path).to_pylist()
    root = shard_root(manifest_path)  # stored paths are relative to the workdir; labels keep them so
    rows = [{**row, "file": resolve_stored(row["path"], root)} for row in rows]
    shard = manifest_path.stem
    labels = []
    for batch in _decoded_batches(rows, labeler.params.batch_size, labeler.params.decode_workers):
        labels.extend(labeler.label_batch(batch, shard))
        if on_batch is not None:
            on_batch(len(batch))
    write_table_atomic(labels_to_table(labels), out_path, expected)
    statuses = [label.status for label in labels]
    return ShardResult(out_path, False, {s: statuses.count(s) for s in set(statuses)})
