"""Parquet files written atomically (temp name, fsync, ``os.replace``) with a fingerprint and page
checksums.

Readers never see a half-written file: a shard exists whole or not at all. The fingerprint lives in
the file's key-value metadata, so "was this shard made from these inputs?" is one footer read.
Every data page carries a CRC32 (``write_page_checksum``), checked on every full read: a shard whose
bytes changed after it was written (a flipped bit, a bad disk, a stray write) is found, instead of
being read as silently wrong data, and :func:`shard_is_current` then says it must be recomputed.
Write errors (a full disk) name the file (:class:`engine.storage.files.WriteError`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.storage.files import atomic_file

FINGERPRINT_KEY = b"sodforge.fingerprint"


def write_table_atomic(table: pa.Table, path: str | Path, fingerprint: str | None = None) -> Path:
    """Write ``table`` to ``path`` atomically, with page checksums and ``fingerprint`` in the file metadata.

    Raises:
        WriteError: (an ``OSError``) naming ``path`` when the disk is full or not writable.
    """
    path = Path(path)
    if fingerprint is not None:
        metadata = dict(table.schema.metadata or {})
        metadata[FINGERPRINT_KEY] = fingerprint.encode("ascii")
        table = table.replace_schema_metadata(metadata)
    with atomic_file(path) as handle:
        pq.write_table(table, handle, compression="zstd", write_page_checksum=True)
    return path


def read_fingerprint(path: str | Path) -> str | None:
    """The fingerprint stored in ``path``; ``None`` if missing, unreadable or corrupt."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    value = metadata.get(FINGERPRINT_KEY)
    return value.decode("ascii") if value is not None else None


def verify_table(path: str | Path) -> str | None:
    """Read every page of ``path`` checking its checksum; ``None`` when whole, else what is wrong.

    Costs one full read (~1-10 ms per label shard); files written before page checksums existed are
    still decoded in full, which catches most but not all damage.
    """
    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
        for index in range(parquet.num_row_groups):
            parquet.read_row_group(index)
    except (OSError, pa.ArrowException) as err:
        return str(err)
    return None


def shard_is_current(path: str | Path, fingerprint: str, verify: bool = True) -> bool:
    """True when ``path`` exists, carries ``fingerprint`` and (with ``verify``) reads back whole."""
    if not Path(path).is_file() or read_fingerprint(path) != fingerprint:
        return False
    return not verify or verify_table(path) is None


def read_table(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet file (page checksums checked), raising ``ValueError`` naming the file if it is corrupt."""
    try:
        return pq.read_table(path, columns=columns, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as err:
        raise ValueError(f"{path}: not a readable Parquet file ({err}); delete it or rerun the step that wrote it") from err
