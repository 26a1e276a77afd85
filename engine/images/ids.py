"""Content ids: an image's id is a hash of its bytes, so duplicates share an id."""

from __future__ import annotations

import hashlib
from pathlib import Path

ID_HEX_CHARS = 32  # blake2b with a 16-byte digest


def content_id(data: bytes) -> str:
    """Return the 32-hex-character content id of ``data``."""
    return hashlib.blake2b(data, digest_size=ID_HEX_CHARS // 2).hexdigest()


def file_content_id(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Content id of a file, read in chunks (never the whole file in memory)."""
    digest = hashlib.blake2b(digest_size=ID_HEX_CHARS // 2)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
