"""Damaged and misleading files for the fault tests: images that are not what they claim, flipped bytes."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A 69-byte PNG whose header claims ``width x height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + _chunk(b"IEND", b""))
    return path


def huge_jpeg(path: Path, width: int = 14000, height: int = 13000) -> Path:
    """A small JPEG whose frame header (SOF0) claims ``width x height`` (182 Mpx by default)."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def flip_mid_page(path: Path, column: str) -> None:
    """Flip one byte in the middle of ``column``'s dictionary page (where dictionary-encoded strings live),
    leaving the footer and its fingerprint intact (``column`` must be dictionary-encoded, as strings are)."""
    meta = pq.ParquetFile(path).metadata.row_group(0)
    chunk = next(meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == column)
    if not chunk.has_dictionary_page:
        raise ValueError(f"{path}: column {column} has no dictionary page to damage")
    offset = (chunk.dictionary_page_offset + chunk.data_page_offset) // 2
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
