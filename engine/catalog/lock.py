"""One labelling run per workdir at a time: an advisory lock file naming its holder.

``WORKDIR/.sodforge.lock`` is locked with ``fcntl.flock`` for as long as a run works on the
workdir and holds one JSON line about the holder (pid, host, command, since when). The kernel
drops the lock when the holder dies, even on ``kill -9``, so a lock is never stale: a lock file
left behind by a dead process is simply taken over. A second run on the same workdir gets a
:class:`WorkdirBusyError` that says who holds it, instead of doing all the work a second time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

LOCK_NAME = ".sodforge.lock"


class WorkdirBusyError(ValueError):
    """Another process is working on this workdir (the message names it)."""


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def describe_holder(holder: dict) -> str:
    """``pid 123 on host h since 2026-11-02T10:00:00+00:00 (sodforge label ...)`` (what is known)."""
    if not holder:
        return "another process"
    text = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since {holder.get('since', '?')}"
    return text + (f" ({holder['command']})" if holder.get("command") else "")


@contextlib.contextmanager
def workdir_lock(root: str | Path, purpose: str) -> Iterator[Path]:
    """Hold the lock of workdir ``root`` for ``purpose`` (e.g. ``labelling run ab12cd``).

    Raises:
        WorkdirBusyError: another live process holds it; the message names pid, host and command.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirBusyError(
                f"{root} is busy: {purpose} cannot start while {describe_holder(_holder(path))} works on it "
                f"(lock {path}). Wait for it to finish, or stop that process; the lock is released the moment "
                "it exits, even if it is killed."
            ) from None
        holder = {
            "pid": os.getpid(), "host": socket.gethostname(), "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "purpose": purpose, "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:300],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def lock_holder(root: str | Path) -> dict | None:
    """Who holds the lock of workdir ``root`` right now (its JSON line), or None when it is free."""
    path = Path(root) / LOCK_NAME
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(path) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
