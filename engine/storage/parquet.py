"""Parquet files written atomically (temp name, fsync, ``os.replace``) with a fingerprint.

Readers never see a half-written file: a shard exists whole or not at all. The fingerprint lives in
the file's key-value metadata, so "is this shard current?" is one footer read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

FINGERPRINT_KEY = b"sodforge.fingerprint"


def write_table_atomic(table: pa.Table, path: str | Path, fingerprint: str | None = None) -> Path:
    """Write ``table`` to ``path`` atomically, storing ``fingerprint`` in the file metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fingerprint is not None:
        metadata = dict(table.schema.metadata or {})
        metadata[FINGERPRINT_KEY] = fingerprint.encode("ascii")
        table = table.replace_schema_metadata(metadata)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def read_fingerprint(path: str | Path) -> str | None:
    """The fingerprint stored in ``path``; ``None`` if missing, unreadable or corrupt."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = metadata.get(FINGERPRINT_KEY)
    return value.decode("ascii") if value is not None else None


def shard_is_current(path: str | Path, fingerprint: str) -> bool:
    """True when ``path`` exists, is a readable Parquet file and carries ``fingerprint``."""
    return Path(path).is_file() and read_fingerprint(path) == fingerprint


def read_table(path: str | Path) -> pa.Table:
    """Read a whole Parquet file, raising ``ValueError`` naming the file if it is corrupt."""
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as err:
        raise ValueError(f"{path}: not a readable Parquet file ({err})") from err
