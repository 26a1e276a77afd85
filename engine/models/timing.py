"""Opt-in timing of the labelling stages (benchmarks): time inside model calls vs everything else.

Off by default (``timed`` is then a no-op). Inside ``with collect() as times:`` every
``with timed("caption", device):`` adds its duration to ``times``. On CUDA the duration is taken
between two CUDA events on the current stream, so timing never synchronises the GPU: the events are
read once, in :meth:`StageTimes.seconds`, after the caller has synchronised.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Iterator

import torch

_active: StageTimes | None = None


class StageTimes:
    """Seconds and calls per stage name, summed over threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = defaultdict(float)
        self._calls: dict[str, int] = defaultdict(int)
        self._events: list[tuple[str, torch.cuda.Event, torch.cuda.Event]] = []

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._seconds[stage] += seconds
            self._calls[stage] += 1

    def add_events(self, stage: str, start: torch.cuda.Event, end: torch.cuda.Event) -> None:
        with self._lock:
            self._events.append((stage, start, end))
            self._calls[stage] += 1

    def seconds(self) -> dict[str, float]:
        """Per-stage seconds (CUDA events resolved: synchronise the device before calling)."""
        with self._lock:
            out = dict(self._seconds)
            for stage, start, end in self._events:
                out[stage] = out.get(stage, 0.0) + start.elapsed_time(end) / 1000.0
            return out

    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(self._calls)


@contextlib.contextmanager
def collect() -> Iterator[StageTimes]:
    """Record every :func:`timed` block (any thread) until the block ends."""
    global _active
    previous, _active = _active, StageTimes()
    try:
        yield _active
    finally:
        _active = previous


@contextlib.contextmanager
def timed(stage: str, device: torch.device | None = None) -> Iterator[None]:
    """Add the block's duration to the active :class:`StageTimes` (no-op when none is active)."""
    times = _active
    if times is None:
        yield
        return
    if device is not None and device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        try:
            yield
        finally:
            end.record()
            times.add_events(stage, start, end)
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        times.add(stage, time.perf_counter() - started)
