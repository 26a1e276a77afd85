"""Shard naming and planning: a shard is a fixed list of image ids."""

from __future__ import annotations

from collections.abc import Sequence


def shard_name(index: int) -> str:
    """``shard-00042``: zero-padded so names sort in order."""
    if index < 0:
        raise ValueError(f"shard index must be >= 0, got {index}")
    return f"shard-{index:05d}"


def chunk_ids(ids: Sequence[str], shard_size: int) -> list[list[str]]:
    """Split ``ids`` into consecutive chunks of at most ``shard_size``."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [list(ids[i : i + shard_size]) for i in range(0, len(ids), shard_size)]
