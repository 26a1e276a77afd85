"""Shards, fingerprints and atomic Parquet files: the unit of resume and incremental recompute."""

from engine.storage.fingerprint import fingerprint
from engine.storage.parquet import (
    FINGERPRINT_KEY,
    read_fingerprint,
    read_table,
    shard_is_current,
    write_table_atomic,
)
from engine.storage.shards import chunk_ids, shard_name

__all__ = [
    "FINGERPRINT_KEY",
    "chunk_ids",
    "fingerprint",
    "read_fingerprint",
    "read_table",
    "shard_is_current",
    "shard_name",
    "write_table_atomic",
]
