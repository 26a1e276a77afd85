"""Shards, fingerprints and atomic Parquet files: the unit of resume and incremental recompute."""

from engine.storage.files import WriteError, atomic_file, names_path, write_bytes_atomic, write_text_atomic
from engine.storage.fingerprint import fingerprint
from engine.storage.parquet import (
    FINGERPRINT_KEY,
    read_fingerprint,
    read_table,
    shard_is_current,
    verify_table,
    write_table_atomic,
)
from engine.storage.shards import chunk_ids, shard_name

__all__ = [
    "FINGERPRINT_KEY",
    "WriteError",
    "atomic_file",
    "chunk_ids",
    "fingerprint",
    "names_path",
    "read_fingerprint",
    "read_table",
    "shard_is_current",
    "shard_name",
    "verify_table",
    "write_bytes_atomic",
    "write_table_atomic",
    "write_text_atomic",
]
