"""Files written whole or not at all (temp name beside the target, fsync, ``os.replace``), and write
errors that name the file.

The OS reports a full disk as ``OSError: [Errno 28] No space left on device`` without saying which
file: every writer here turns such an error into a :class:`WriteError` (still an ``OSError``) whose
message names the path, e.g. ``cannot write runs/x/shard-00003.parquet: [Errno 28] No space left on
device (disk full: free space and rerun; finished work is kept)``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


class WriteError(OSError):
    """Writing ``filename`` failed (disk full, read-only file system, permissions...)."""

    def __str__(self) -> str:
        hint = " (disk full: free space and rerun; finished work is kept)" if self.errno == errno.ENOSPC else ""
        code = f"[Errno {self.errno}] " if self.errno is not None else ""
        return f"cannot write {self.filename}: {code}{self.strerror}{hint}"

    def __repr__(self) -> str:  # what Prefect's task logs show: the path too
        return f"WriteError({str(self)!r})"


def write_error(err: OSError, path: str | Path) -> WriteError:
    """``err`` as a :class:`WriteError` naming ``path`` (unchanged if it already is one)."""
    if isinstance(err, WriteError):
        return err
    code = err.errno if err.errno is not None else errno.EIO
    return WriteError(code, os.strerror(code) if err.errno is not None else str(err), str(path))


@contextmanager
def names_path(path: str | Path) -> Iterator[None]:
    """Turn any ``OSError`` raised inside the block into a :class:`WriteError` naming ``path``
    (for writers that cannot write through :func:`atomic_file`, e.g. matplotlib's ``savefig``)."""
    try:
        yield
    except OSError as err:
        raise write_error(err, path) from err


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file beside ``path``; when the block ends without an error the
    file is flushed, fsynced and renamed to ``path``, otherwise removed. ``OSError`` -> :class:`WriteError`."""
    path = Path(path)
    with names_path(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with names_path(path):
            with os.fdopen(fd, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def write_bytes_atomic(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` whole or not at all; returns ``path``."""
    with atomic_file(path) as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all; returns ``path``."""
    return write_bytes_atomic(text.encode("utf-8"), path)
