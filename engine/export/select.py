"""Which labels to export: one labelling run of a workdir's catalog, filtered by a SQL condition.

The condition is plain DuckDB SQL over the columns of the catalog's ``label_quality`` view (status,
category, quality signals, review verdicts such as ``needs_relabel``...) plus ``mask_rle``, e.g.
``quality_score >= 0.5 AND status = 'ok' AND NOT needs_relabel``.
The catalog is opened read-only; rows stream in batches, so memory is bounded by the batch size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb

from engine.catalog import Workdir, connect_readonly

DEFAULT_WHERE = "status = 'ok'"


def _catalog(workdir: str | Path) -> Path:
    return Workdir.at(workdir).catalog_path


def resolve_run(con: duckdb.DuckDBPyConnection, run_id: str | None) -> str:
    """``run_id`` if the catalog has labels for it; else (``None``) the newest run: the one that
    completed last (:func:`engine.catalog.runs.recency`), runs never completed after those."""
    if run_id is not None:
        found = con.execute("SELECT count(*) FROM labels WHERE run_id = ?", [run_id]).fetchone()[0]
        if not found:
            known = [r[0] for r in con.execute("SELECT DISTINCT run_id FROM labels ORDER BY 1").fetchall()]
            raise ValueError(f"run {run_id!r} has no labels in the catalog; known runs: {known}")
        return run_id
    row = con.execute(
        "SELECT l.run_id FROM (SELECT DISTINCT run_id FROM labels) AS l LEFT JOIN runs AS r USING (run_id) "
        "ORDER BY r.finished_at DESC NULLS LAST, r.started_at DESC NULLS LAST, l.run_id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        raise ValueError("the catalog holds no labels; run `sodforge label` (and `sodforge catalog build`) first")
    return row[0]


SOURCE = (
    "SELECT q.*, l.mask_rle FROM label_quality AS q JOIN labels AS l "
    "ON q.image_id = l.image_id AND q.run_id = l.run_id"
)


def _query(where: str) -> str:
    return f"SELECT * FROM ({SOURCE}) WHERE run_id = ? AND ({where}) ORDER BY path, image_id"


def count_selected(workdir: str | Path, where: str = DEFAULT_WHERE, run_id: str | None = None) -> tuple[str, int]:
    """The resolved run id and how many of its labels match ``where``."""
    with connect_readonly(_catalog(workdir)) as con:
        run = resolve_run(con, run_id)
        try:
            count = con.execute(f"SELECT count(*) FROM ({_query(where)})", [run]).fetchone()[0]
        except duckdb.Error as err:
            raise ValueError(f"--where {where!r} is not a valid condition on the label_quality view: {err}") from err
    return run, int(count)


def count_run_labels(workdir: str | Path, run_id: str) -> int:
    """How many labels the run ``run_id`` has (before any condition)."""
    with connect_readonly(_catalog(workdir)) as con:
        return int(con.execute("SELECT count(*) FROM label_quality WHERE run_id = ?", [run_id]).fetchone()[0])


def iter_selected(workdir: str | Path, where: str = DEFAULT_WHERE, run_id: str | None = None,
                  batch_size: int = 256) -> Iterator[dict]:
    """Matching label rows (dicts with the ``labels`` view's columns), ordered by path."""
    with connect_readonly(_catalog(workdir)) as con:
        run = resolve_run(con, run_id)
        try:
            cursor = con.execute(_query(where), [run])
        except duckdb.Error as err:
            raise ValueError(f"--where {where!r} is not a valid condition on the label_quality view: {err}") from err
        columns = [d[0] for d in cursor.description]
        while batch := cursor.fetchmany(batch_size):
            for values in batch:
                yield dict(zip(columns, values, strict=True))


def export_names(workdir: str | Path, where: str = DEFAULT_WHERE, run_id: str | None = None) -> dict[str, str]:
    """A unique file stem per selected image id: the image's stem, plus ``_<id[:8]>`` when stems clash."""
    with connect_readonly(_catalog(workdir)) as con:
        run = resolve_run(con, run_id)
        try:
            rows = con.execute(f"SELECT image_id, path FROM ({_query(where)})", [run]).fetchall()
        except duckdb.Error as err:
            raise ValueError(f"--where {where!r} is not a valid condition on the label_quality view: {err}") from err
    stems: dict[str, int] = {}
    for _, path in rows:
        stem = Path(path).stem
        stems[stem] = stems.get(stem, 0) + 1
    return {image_id: Path(path).stem if stems[Path(path).stem] == 1 else f"{Path(path).stem}_{image_id[:8]}"
            for image_id, path in rows}
