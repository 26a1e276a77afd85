"""Label one manifest shard into one label shard (Parquet, written atomically, fingerprinted).

Three stages overlap: worker threads decode and prepare the next batch (``decode_workers``), the
calling thread runs the models on this one, and ``finish_workers`` threads turn the previous
batches' model outputs into labels. At most two prepared batches and two batches of unfinished
model outputs are held, so memory is bounded by the batch size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.images.paths import resolve_stored, shard_root
from engine.labeling.identity import code_identity
from engine.labeling.pipeline import Labeler
from engine.labeling.prepare import decode, lower_thread_priority, prepared_batches
from engine.labeling.record import PseudoLabel, labels_to_table
from engine.models.timing import timed
from engine.params import LabelParams
from engine.storage import fingerprint, read_fingerprint, read_table, shard_is_current, write_table_atomic


@dataclass(frozen=True)
class ShardResult:
    """Outcome of one shard: its output path, whether it was skipped, and status counts."""

    path: Path
    skipped: bool
    counts: dict[str, int]


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
    labels = _label_rows(rows, manifest_path.stem, labeler, on_batch)
    with timed("write"):
        write_table_atomic(labels_to_table(labels), out_path, expected)
    statuses = [label.status for label in labels]
    return ShardResult(out_path, False, {s: statuses.count(s) for s in set(statuses)})


def canvas_order(rows: list[dict], labeler: Labeler) -> list[int]:
    """Row indices sorted by GroundingDINO canvas (from the manifest's sizes), so each batch holds few
    canvases and the grounder makes few calls; rows without a known size go last, in order."""
    transform = labeler.preparer.transforms["ground"]

    def key(index: int) -> tuple:
        height, width = rows[index].get("height"), rows[index].get("width")
        if not height or not width:
            return (1, 0, 0, index)
        return (0, *transform.canvas(transform.output_size((height, width))), index)

    return sorted(range(len(rows)), key=key)


def _label_rows(rows: list[dict], shard: str, labeler: Labeler, on_batch: Callable[[int], None] | None) -> list[PseudoLabel]:
    """Prepare (workers) -> models (this thread) -> finish (workers), overlapped; labels in row order.

    Rows run in :func:`canvas_order` (an image's label does not depend on its batch companions)."""
    p = labeler.params
    order = canvas_order(rows, labeler)
    done: list[PseudoLabel] = []
    unfinished: deque[list[Future]] = deque()
    with ThreadPoolExecutor(max(1, p.finish_workers), thread_name_prefix="finish", initializer=lower_thread_priority) as finishers:
        for batch in prepared_batches([rows[i] for i in order], p.batch_size, p.decode_workers, labeler.preparer):
            with timed("model_thread"):
                pending = labeler.run_models(batch)
            unfinished.append([finishers.submit(labeler.finish, item, shard) for item in pending])
            with timed("wait_finish"):
                while len(unfinished) > 2:  # bound the model outputs waiting to be finished
                    done.extend(future.result() for future in unfinished.popleft())
            if on_batch is not None:
                on_batch(len(batch))
        with timed("wait_finish"):
            while unfinished:
                done.extend(future.result() for future in unfinished.popleft())
    labels: list[PseudoLabel | None] = [None] * len(rows)
    for index, label in zip(order, done, strict=True):
        labels[index] = label
    return labels


__all__ = ["ShardResult", "canvas_order", "decode", "label_shard", "shard_fingerprint"]
