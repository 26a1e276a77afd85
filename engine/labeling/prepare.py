"""Everything before the models, off the model thread: decode, resize, pad, normalise, batch.

:class:`Preparer` turns decoded images into one :class:`PreparedBatch` with the inputs of all three
models (see :mod:`engine.models.preprocess`); :func:`prepared_batches` runs it on worker threads one
batch ahead of the models, so the model thread only launches model work.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from engine.images import ImageReadError, read_rgb
from engine.models.preprocess import PixelBatch, collate
from engine.models.timing import timed


@dataclass
class ImageItem:
    """A decoded image (``rgb``: ``(H, W, 3) uint8``) or the reason it could not be decoded.

    ``size_hw`` stays known after the pixels are released (prepared batches drop ``rgb``).
    """

    image_id: str
    path: str
    rgb: np.ndarray | None = None
    error: str | None = None
    size_hw: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.rgb is not None and self.size_hw is None:
            self.size_hw = (int(self.rgb.shape[0]), int(self.rgb.shape[1]))


@dataclass
class PreparedImage:
    """One image resized for each model: ``(3, h, w) uint8`` tensors (``None`` for an error item)."""

    item: ImageItem
    caption: torch.Tensor | None = None
    ground: torch.Tensor | None = None
    segment: torch.Tensor | None = None


@dataclass
class PreparedBatch:
    """Model inputs of a batch. ``items``: every image, in order; ``good``: indices of the decoded ones.

    Row ``r`` of each pixel batch is image ``good[r]``; ``ground`` is one ``(rows, pixels)`` bucket
    per GroundingDINO canvas.
    """

    items: list[ImageItem]
    good: list[int]
    caption: PixelBatch | None
    segment: PixelBatch | None
    ground: list[tuple[list[int], PixelBatch]]

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, rows: list[int]) -> PreparedBatch:
        """The batch of good rows ``rows`` only (for splitting a failing batch)."""
        where = {row: new for new, row in enumerate(rows)}
        buckets = []
        for bucket_rows, pixels in self.ground:
            keep = [j for j, r in enumerate(bucket_rows) if r in where]
            if keep:
                buckets.append(([where[bucket_rows[j]] for j in keep], pixels.subset(keep)))
        return PreparedBatch(
            [self.items[self.good[r]] for r in rows], list(range(len(rows))),
            self.caption.subset(rows) if self.caption is not None else None,
            self.segment.subset(rows) if self.segment is not None else None, buckets,
        )


class Preparer:
    """Prepares images for a captioner, grounder and segmenter that each carry a ``transform``.

    ``normalize_now``: normalise in the worker (CPU runtime) or leave uint8 for the GPU.
    ``ground_pad_multiple``: GroundingDINO canvases are the resized image rounded up to this.
    """

    def __init__(self, models, ground_pad_multiple: int = 1, normalize_now: bool = True, pin_memory: bool = False):
        self.transforms = {
            "caption": models.captioner.transform,
            "ground": models.grounder.transform.with_pad_multiple(ground_pad_multiple),
            "segment": models.segmenter.transform,
        }
        self.normalize_now = normalize_now
        self.pin_memory = pin_memory

    def prepare(self, item: ImageItem) -> PreparedImage:
        """Resize a decoded item for every model; a failure becomes the item's error."""
        if item.rgb is None:
            return PreparedImage(item)
        try:
            with timed("preprocess"):
                tensors = {name: transform.resize(item.rgb) for name, transform in self.transforms.items()}
        except Exception as err:  # noqa: BLE001 - an odd image costs only itself
            error = f"{item.path}: could not be prepared ({type(err).__name__}: {err})"
            return PreparedImage(ImageItem(item.image_id, item.path, error=error, size_hw=item.size_hw))
        released = ImageItem(item.image_id, item.path, size_hw=item.size_hw)  # the pixels are not needed any more
        return PreparedImage(released, **tensors)

    def collate(self, prepared: list[PreparedImage]) -> PreparedBatch:
        """One :class:`PreparedBatch` from prepared images (error items pass through)."""
        with timed("preprocess"):
            good = [i for i, p in enumerate(prepared) if p.caption is not None]
            items = [p.item for p in prepared]
            if not good:
                return PreparedBatch(items, [], None, None, [])
            sizes = [prepared[i].item.size_hw for i in good]
            batches = {
                name: self._collate([getattr(prepared[i], name) for i in good], sizes, name) for name in ("caption", "segment")
            }
            transform = self.transforms["ground"]
            canvases: dict[tuple[int, int], list[int]] = {}
            for row, i in enumerate(good):
                canvases.setdefault(transform.canvas(tuple(prepared[i].ground.shape[1:])), []).append(row)
            ground = [
                (rows, self._collate([prepared[good[r]].ground for r in rows], [sizes[r] for r in rows], "ground"))
                for rows in canvases.values()
            ]
            return PreparedBatch(items, good, batches["caption"], batches["segment"], ground)

    def _collate(self, tensors: list[torch.Tensor], sizes, name: str) -> PixelBatch:
        return collate(tensors, sizes, self.transforms[name], self.normalize_now, self.pin_memory)


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
        with timed("decode"):
            return ImageItem(row["image_id"], row["path"], rgb=read_rgb(row.get("file") or row["path"]))
    except ImageReadError as err:
        return ImageItem(row["image_id"], row["path"], error=str(err))
    except Exception as err:  # noqa: BLE001 - any decoder failure is a per-image error, never a crash
        return ImageItem(row["image_id"], row["path"], error=f"{row['path']}: {type(err).__name__}: {err}")


WORKER_NICENESS = 10


def lower_thread_priority(niceness: int = WORKER_NICENESS) -> None:
    """Thread-pool initializer: make this worker thread yield the CPU to the model thread.

    Freshly woken workers otherwise preempt the model thread (the scheduler favours sleepers), which
    then waits tens of ms per batch on a busy machine. Linux only (per-thread niceness); a no-op
    elsewhere or when not permitted.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
    except (AttributeError, OSError):
        pass


def prepared_batches(rows: list[dict], batch_size: int, workers: int, preparer: Preparer) -> Iterator[PreparedBatch]:
    """Decode + prepare ``rows`` on ``workers`` threads, collate on one more, one batch ahead.

    At most two batches are held (the one the caller runs and the next), so memory is bounded by
    the batch size, not the shard. The first batch is a quarter batch, so the models start after a
    few images instead of a whole batch.
    """
    first = max(1, batch_size // 4)
    chunks = [rows[:first]] + [rows[i : i + batch_size] for i in range(first, len(rows), batch_size)] if rows else []
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="prepare", initializer=lower_thread_priority) as pool, \
            ThreadPoolExecutor(1, thread_name_prefix="collate", initializer=lower_thread_priority) as collator:

        def submit(chunk: list[dict]) -> Future:
            images = [pool.submit(lambda row: preparer.prepare(decode(row)), row) for row in chunk]
            return collator.submit(lambda: preparer.collate([future.result() for future in images]))

        pending = [submit(chunks[0])] if chunks else []
        for index in range(len(chunks)):
            if index + 1 < len(chunks):  # the next batch is prepared while the caller runs this one
                pending.append(submit(chunks[index + 1]))
            with timed("wait_prepare"):  # the caller waiting for its batch (pipeline fill, or workers too slow)
                batch = pending.pop(0).result()
            yield batch
