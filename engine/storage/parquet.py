"""Parquet files written atomically (temp name, fsync, ``os.replace``) with a fingerprint and page
checksums.

Readers never see a half-written file: a shard exists whole or not at all. The fingerprint lives in
the file's key-value metadata, so "was this shard made from these inputs?" is one footer read.
Every data page carries a CRC32 (``write_page_checksum``), checked on every full read, and the footer
carries a digest of the columns, types and row count: a shard whose bytes changed after it was
written (a flipped bit, a bad disk, a stray write) is found instead of being read as silently wrong
data, and :func:`shard_is_current` then says it must be recomputed.
Write errors (a full disk) name the file (:class:`engine.storage.files.WriteError`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.storage.files import atomic_file
from engine.storage.fingerprint import fingerprint

FINGERPRINT_KEY = b"sodforge.fingerprint"
LAYOUT_KEY = b"sodforge.layout"  # digest of column names/types and row count, checked by verify_table


def _type_name(kind: pa.DataType) -> str:
    """``kind`` without the names of list items (Parquet renames ``item`` to ``element``)."""
    if pa.types.is_fixed_size_list(kind):
        return f"fixed_size_list<{_type_name(kind.value_type)}>[{kind.list_size}]"
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return f"{'large_' if pa.types.is_large_list(kind) else ''}list<{_type_name(kind.value_type)}>"
    if pa.types.is_struct(kind):
        return "struct<" + ", ".join(f"{f.name}: {_type_name(f.type)}" for f in kind) + ">"
    return str(kind)


def _layout(schema: pa.Schema, rows: int) -> bytes:
    """What the footer must still say after a round trip: columns, types and the row count."""
    columns = [(field.name, _type_name(field.type)) for field in schema]
    return fingerprint(columns, rows).encode("ascii")


def write_table_atomic(table: pa.Table, path: str | Path, fingerprint: str | None = None) -> Path:
    """Write ``table`` to ``path`` atomically, with page checksums and ``fingerprint`` in the file metadata.

    Raises:
        WriteError: (an ``OSError``) naming ``path`` when the disk is full or not writable.
    """
    path = Path(path)
    metadata = {**(table.schema.metadata or {}), LAYOUT_KEY: _layout(table.schema, table.num_rows)}
    if fingerprint is not None:
        metadata[FINGERPRINT_KEY] = fingerprint.encode("ascii")
    table = table.replace_schema_metadata(metadata)
    with atomic_file(path) as handle:
        pq.write_table(table, handle, compression="zstd", write_page_checksum=True)
    return path


def read_fingerprint(path: str | Path) -> str | None:
    """The fingerprint stored in ``path``; ``None`` if missing, unreadable or corrupt."""
    try:
        metadata = pq.read_schema(path).metadata or {}
        value = metadata.get(FINGERPRINT_KEY)
        return value.decode("ascii") if value is not None else None
    except (OSError, ValueError, pa.ArrowException):  # ValueError: a damaged footer can fail to decode as text
        return None


def verify_table(path: str | Path) -> str | None:
    """Read every page of ``path`` checking its checksum, and the footer's columns, types and row
    count against the digest written with them; ``None`` when whole, else what is wrong.

    Costs one full read (~2-10 ms per 512-row label shard, ``benchmarks/shard_checksums.py``). Files
    written before page checksums existed are still decoded in full (catches most damage, not all).
    """
    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
        schema, rows = parquet.schema_arrow, 0
        for index in range(parquet.num_row_groups):
            rows += parquet.read_row_group(index).num_rows
        expected = (schema.metadata or {}).get(LAYOUT_KEY)
    except (OSError, ValueError, pa.ArrowException) as err:
        return str(err) or type(err).__name__
    if expected is not None and expected != _layout(schema, rows):
        return "columns, types or row count differ from what was written (damaged footer)"
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
    except (OSError, ValueError, pa.ArrowException) as err:
        raise ValueError(f"{path}: not a readable Parquet file ({err}); delete it or rerun the step that wrote it") from err
