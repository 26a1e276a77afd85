"""Compacted copies of finished shard sets, so catalog queries open a few files instead of hundreds.

DuckDB pays ~0.1 ms per Parquet file per query: 600 shards cost ~50 ms before any work, one file
~2 ms. A *finished* label version (its run record says ``completed``) and the image manifest are
copied into one Parquet file under ``catalog/compact/``. The copy carries a signature of the shard
files it was made from (names, sizes, mtimes); it is rewritten when they change and never used
when they differ. Runs still in progress are read from their live shards.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.catalog.layout import Workdir
from engine.storage import fingerprint, read_fingerprint, read_table, write_table_atomic

log = logging.getLogger(__name__)


def shard_files(directory: Path) -> list[Path]:
    """The whole shards of ``directory`` (temporary ``.*.tmp`` files never match)."""
    return sorted(directory.glob("*.parquet")) if directory.is_dir() else []


def _signature(files: list[Path]) -> str:
    return fingerprint([(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files])


def compacted(files: list[Path], target: Path, schema: pa.Schema | None = None) -> Path:
    """``target`` holding the rows of ``files`` (one file), rewritten only when ``files`` changed.

    A shard that fails its checksums is left out (with a warning) instead of served or stopping the
    build; recomputing it (rerun the step that wrote it) changes the signature, so it is compacted then.
    ``schema`` gives the (empty) table when no shard is readable.
    """
    signature = _signature(files)
    if read_fingerprint(target) != signature:
        tables = []
        for path in files:
            try:
                tables.append(read_table(path))
            except ValueError as err:
                log.warning("catalog: leaving out a damaged shard until it is recomputed: %s", err)
        if not tables and schema is None:
            raise ValueError(f"{files[0].parent}: every shard is damaged; rerun the step that wrote them")
        table = pa.concat_tables(tables, promote_options="default") if tables else schema.empty_table()
        write_table_atomic(table, target, signature)
    return target


def completed_runs(workdir: Workdir) -> set[str]:
    """Run ids whose run record says ``completed`` and that no attempt is changing right now.

    A run whose latest attempt started after its last completion (a rerun in progress, or one that
    was killed) is read from its live shards, so shards it writes show up as they land.
    """
    done = set()
    for path in shard_files(workdir.runs_dir):
        try:
            rows = pq.read_table(path).to_pylist()
        except (OSError, pa.ArrowInvalid):
            continue
        done.update(r["run_id"] for r in rows if r["state"] == "completed" and not _attempt_open(r))
    return done


def _attempt_open(record: dict) -> bool:
    attempt, finished = record.get("last_attempt_at"), record.get("finished_at")
    return attempt is not None and finished is not None and attempt > finished


def compact_dir(workdir: Workdir) -> Path:
    return workdir.data / "compact"
