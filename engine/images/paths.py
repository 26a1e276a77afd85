"""Image paths as stored in shards: relative to the folder that owns the shards, so a project can
be cloned or moved as a whole (and DVC sees the same bytes in every clone).

A stored path is POSIX-style and relative to a *root*: a workdir (the folder holding
``catalog/``) for manifests and label shards, or the output folder of ``import-masks``. Paths
that would have to climb up to the file-system root (images on another disk than the workdir)
stay absolute. :func:`shard_root` finds the root of any shard file from where it lies, and
:func:`resolve_stored` turns a stored path back into a file path.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


def to_stored(path: str | Path, root: str | Path) -> str:
    """``path`` relative to ``root`` (``root`` and ``path`` made absolute first), or absolute.

    >>> to_stored("/p/data/raw/a.jpg", "/p/data"), to_stored("/p/raw/a.jpg", "/p/data/gt")
    ('raw/a.jpg', '../../raw/a.jpg')
    >>> to_stored("/mnt/a.jpg", "/home/u/run")
    '/mnt/a.jpg'
    """
    path, root = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    if os.path.commonpath([path, root]) == path.anchor:
        return path.as_posix()
    return PurePosixPath(Path(os.path.relpath(path, root)).as_posix()).as_posix()


def resolve_stored(stored: str | None, root: str | Path) -> str | None:
    """The file path of a stored path: absolute ones unchanged, relative ones joined to ``root``.

    >>> resolve_stored("../raw/a.jpg", "/p/data/gt"), resolve_stored("/x/a.jpg", "/p")
    ('/p/data/raw/a.jpg', '/x/a.jpg')
    """
    if stored is None or os.path.isabs(stored):
        return stored
    return os.path.normpath(os.path.join(os.path.abspath(root), stored))


def shard_root(shard_path: str | Path) -> Path:
    """The root that relative paths inside ``shard_path`` are relative to.

    The workdir for a shard of a workdir's ``catalog/<kind>/`` folders
    (``WORKDIR/catalog/images/shard-00000.parquet``, ``WORKDIR/catalog/labels/run=X/...``); else the
    folder holding the shard's ``run=<id>/`` folder (``import-masks --out``); else the shard's folder.

    >>> str(shard_root("/p/data/catalog/labels/run=a/shard-00000.parquet")), str(shard_root("/p/gt/run=g/s.parquet"))
    ('/p/data', '/p/gt')
    """
    folder = Path(os.path.abspath(shard_path)).parent
    owner = folder.parent if folder.name.startswith("run=") else folder
    return owner.parent.parent if owner.parent.name == "catalog" else owner
