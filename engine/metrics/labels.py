"""Pseudo-labels as predictions: label shards (a workdir's labelling run, or any folder of label
shards, e.g. from ``import-masks`` or ``refine --labels``) scored against true masks.

Images are matched to ground-truth masks by the file stem of their ``path``. A label whose status is
not ``ok`` (``no_object``, ``error``) is scored as an empty prediction and named in the report, so
bad labelling lowers the scores instead of disappearing from them.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pyarrow.parquet as pq

from engine.catalog.layout import Workdir
from engine.catalog.runs import recency
from engine.masks import decode_rle
from engine.metrics.benchmarks import Folder
from engine.metrics.evaluate import EvalItem
from engine.storage import read_table

LABEL_COLUMNS = ("image_id", "path", "status", "error", "height", "width", "mask_rle")


def run_ids(workdir: Workdir) -> list[str]:
    """Labelling runs with label shards in ``workdir``, oldest first: by the runs table's
    :func:`engine.catalog.runs.recency` (the last to complete is newest), then by name."""
    on_disk = sorted(p.name.removeprefix("run=") for p in workdir.labels_root.glob("run=*") if p.is_dir())
    records: dict[str, dict] = {}
    for path in sorted(workdir.runs_dir.glob("*.parquet")) if workdir.runs_dir.is_dir() else []:
        for row in pq.read_table(path).to_pylist():
            records[row["run_id"]] = row
    return sorted(on_disk, key=lambda r: (r in records, recency(records[r]) if r in records else (), r))


def latest_run_id(workdir: str | Path | Workdir) -> str:
    """The newest labelling run of ``workdir`` (the last to complete); ValueError if there is none."""
    workdir = workdir if isinstance(workdir, Workdir) else Workdir.at(workdir)
    runs = run_ids(workdir)
    if not runs:
        raise ValueError(f"{workdir.labels_root}: no label shards (run=*/); label images first")
    return runs[-1]


def read_shard_labels(shards: list[Path]) -> list[dict]:
    """Rows (columns :data:`LABEL_COLUMNS`) of the label ``shards``, sorted by path."""
    rows = []
    for shard in shards:
        try:
            rows.extend(read_table(shard).select(list(LABEL_COLUMNS)).to_pylist())
        except KeyError as err:
            raise ValueError(f"{shard}: not a label shard (missing column {err})") from err
    return sorted(rows, key=lambda r: r["path"])


def read_run_labels(workdir: str | Path | Workdir, run_id: str) -> list[dict]:
    """Rows (columns :data:`LABEL_COLUMNS`) of every label shard of ``run_id``, sorted by path."""
    workdir = workdir if isinstance(workdir, Workdir) else Workdir.at(workdir)
    shards = sorted(p for p in workdir.labels_dir(run_id).glob("*.parquet") if not p.name.startswith("."))
    if not shards:
        raise ValueError(f"{workdir.labels_dir(run_id)}: no label shards for run {run_id!r}")
    return read_shard_labels(shards)


def _decode(counts: str, size_hw: tuple[int, int]):
    return decode_rle(counts, size_hw)


def _label_item(stem: str, gt_path: Path, row: dict) -> EvalItem:
    source = f"label of {row['path']} (image {row['image_id']}, status {row['status']})"
    if row["status"] == "ok" and row["mask_rle"] is not None:
        loader = functools.partial(_decode, row["mask_rle"], (row["height"], row["width"]))
        return EvalItem(stem, gt_path, loader, source, Path(row["path"]))
    reason = f"status {row['status']}" + (f" ({row['error']})" if row.get("error") else "")
    return EvalItem(stem, gt_path, lambda: None, source, Path(row["path"]),
                    note=f"{reason}: scored as an empty map")


def label_items(rows: list[dict], gt: Folder, what: str) -> tuple[list[EvalItem], list[str]]:
    """One :class:`EvalItem` per ground-truth mask in ``gt``, predicted by the label ``rows``.

    ``what`` names the labels in messages (``run new``, ``labels in DIR``). Returns the items and the
    labelled image paths that have no ground truth.

    Raises:
        ValueError: no masks, or two labelled images share a file stem (names both).
    """
    masks = gt.index()
    if not masks:
        raise ValueError(f"{gt.path}: no ground-truth masks")
    by_stem: dict[str, dict] = {}
    for row in rows:
        stem = Path(row["path"]).stem
        if stem in by_stem:
            raise ValueError(f"{what}: two labelled images share the stem {stem!r}: "
                             f"{by_stem[stem]['path']} and {row['path']}; cannot match ground truth by name")
        by_stem[stem] = row
    items = [
        _label_item(stem, gt_path, by_stem[stem]) if stem in by_stem
        else EvalItem(stem, gt_path, None, f"a label for an image named {stem}.* in {what}")
        for stem, gt_path in sorted(masks.items())
    ]
    unmatched = sorted(row["path"] for stem, row in by_stem.items() if stem not in masks)
    return items, unmatched
