"""Append-only annotation storage: one small Parquet file per submission, written atomically.

No file is ever rewritten in place and no database file is held open, so a submission never waits
for (or blocks) a running flow, and a crash loses at most the submission being written. Readers
(the catalog's ``annotations`` view, this store) see whole files only: temporary files start with
a dot and never match ``*.parquet``. ``compact`` merges many small files into one (the merged
file is written before the small ones are removed; rows are de-duplicated by ``annotation_id``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.annotations.records import Annotation, annotations_to_table
from engine.catalog import Workdir, build_catalog
from engine.catalog.views import ANNOTATION_SCHEMA
from engine.storage import fingerprint, write_table_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompactResult:
    """``merged``: the new file (None when there was nothing to merge); ``files``/``rows`` merged."""

    merged: Path | None
    files: int
    rows: int


def _read_rows(path: Path) -> list[dict]:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as err:
        log.warning("%s: unreadable annotation file skipped (%s)", path, err)
        return []
    missing = [f for f in ANNOTATION_SCHEMA if f.name not in table.column_names]
    for f in missing:  # files written before a column was added
        table = table.append_column(f, pa.nulls(len(table), f.type))
    return table.select(ANNOTATION_SCHEMA.names).to_pylist()


class AnnotationStore:
    """The annotations of one workdir (``<workdir>/catalog/annotations/**/*.parquet``).

    Thread-safe within a process; several processes may append at once (file names are unique).
    """

    def __init__(self, workdir: str | Path | Workdir, refresh_catalog: bool = False):
        self.workdir = workdir if isinstance(workdir, Workdir) else Workdir.at(workdir)
        self.root = self.workdir.annotations_dir
        self.refresh_catalog = refresh_catalog
        self._lock = threading.Lock()
        self._cache: dict[Path, list[dict]] = {}

    def files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.rglob("*.parquet") if not p.name.startswith("."))

    def append(self, annotations: Sequence[Annotation], skip_existing: bool = False) -> Path | None:
        """Write ``annotations`` as one new Parquet file; returns it (None if nothing was new)."""
        items = list(annotations)
        if skip_existing:
            known = self.known_ids()
            items = [a for a in items if a.annotation_id not in known]
        if not items:
            return None
        first = min(items, key=lambda a: a.created_at)
        name = f"{first.created_at:%H%M%S%f}-{first.annotation_id[:12]}"
        if len(items) > 1:
            name += f"-{fingerprint(sorted(a.annotation_id for a in items), length=6)}"
        path = self.root / f"{first.created_at:%Y-%m-%d}" / f"{name}.parquet"
        table = annotations_to_table(items)
        with self._lock:
            write_table_atomic(table, path)
            self._cache[path] = table.to_pylist()
            if self.refresh_catalog:
                self._refresh_catalog()
        return path

    def _refresh_catalog(self) -> None:
        try:
            build_catalog(self.workdir)
        except Exception as err:  # noqa: BLE001 - the submission is stored; the view catches up on the next build
            log.warning("catalog refresh after an annotation failed (%s); run `sodforge catalog build`", err)

    def rows(self) -> list[dict]:
        """Every annotation row, de-duplicated by ``annotation_id``, oldest first."""
        with self._lock:
            files = self.files()
            for stale in set(self._cache) - set(files):
                del self._cache[stale]
            for path in files:
                if path not in self._cache:
                    self._cache[path] = _read_rows(path)
            unique = {row["annotation_id"]: row for path in files for row in self._cache[path]}
        return sorted(unique.values(), key=lambda r: (r["created_at"], r["annotation_id"]))

    def known_ids(self) -> set[str]:
        return {row["annotation_id"] for row in self.rows()}

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows(), schema=ANNOTATION_SCHEMA)

    def compact(self, min_files: int = 2) -> CompactResult:
        """Merge every current file into one ``compacted-*.parquet`` and remove the merged files.

        Files appended while compacting are left alone. Safe to rerun after a crash: duplicates
        from a half-finished compaction are removed by ``annotation_id``.
        """
        files = self.files()
        if len(files) < min_files:
            return CompactResult(None, 0, 0)
        unique: dict[str, dict] = {}
        for path in files:
            for row in _read_rows(path):
                unique[row["annotation_id"]] = row
        rows = sorted(unique.values(), key=lambda r: (r["created_at"], r["annotation_id"]))
        digest = fingerprint(sorted(unique), length=8)
        merged = self.root / f"compacted-{rows[-1]['created_at']:%Y%m%dT%H%M%S%f}-{digest}.parquet"
        with self._lock:
            write_table_atomic(pa.Table.from_pylist(rows, schema=ANNOTATION_SCHEMA), merged)
            for path in files:
                if path != merged:
                    path.unlink(missing_ok=True)
            self._cache.clear()
            if self.refresh_catalog:
                self._refresh_catalog()
        return CompactResult(merged, len(files), len(rows))
