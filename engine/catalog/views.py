"""The catalog: a DuckDB file that holds only views over the Parquet shards.

Writers never hold a DuckDB file open; ``build_catalog`` writes a fresh file under a temporary
name, checks it and swaps it in, so readers (opened read-only) are never blocked by a running flow
and never see a broken catalog.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import duckdb
import pyarrow as pa

from engine.catalog.compact import compact_dir, compacted, completed_runs, shard_files
from engine.catalog.layout import Workdir
from engine.catalog.runs import RUN_SCHEMA
from engine.images.manifest import MANIFEST_SCHEMA
from engine.labeling.record import LABEL_SCHEMA
from engine.storage import WriteError, names_path

ANNOTATION_SCHEMA = pa.schema(
    [
        ("annotation_id", pa.string()),
        ("image_id", pa.string()),
        ("kind", pa.string()),  # text | skip | review
        ("annotator", pa.string()),
        ("text", pa.string()),
        ("verdict", pa.string()),
        ("comment", pa.string()),
        ("run_id", pa.string()),
        ("lead_time_s", pa.float64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("started_at", pa.timestamp("us", tz="UTC")),  # when the image was shown (created_at - lead time)
        ("source", pa.string()),  # ui | label-studio | simulated
    ]
)

QUALITY_COLUMNS = (
    "best_box_score",
    "box_count",
    "sam_pred_iou",
    "stability_score",
    "mask_area_frac",
    "components",
    "boundary_smoothness",
    "shape_score",
    "quality_score",
)

VIEW_NAMES = (
    "images", "annotations", "runs", "labels", "captions", "detections", "masks", "reviews", "label_quality",
)


def _duck_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_int32(arrow_type):
        return "INTEGER"
    if pa.types.is_int64(arrow_type):
        return "BIGINT"
    if pa.types.is_float32(arrow_type):
        return "FLOAT"
    if pa.types.is_float64(arrow_type):
        return "DOUBLE"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_fixed_size_list(arrow_type):
        return f"{_duck_type(arrow_type.value_type)}[{arrow_type.list_size}]"
    if pa.types.is_list(arrow_type):
        return f"{_duck_type(arrow_type.value_type)}[]"
    raise TypeError(f"no DuckDB type for {arrow_type}")


def _source_sql(directories: Path | list[Path], schema: pa.Schema) -> str:
    """A live glob over the directories' Parquet files, or an empty typed relation if none exist yet.

    Temporary files (``.name.parquet.<random>.tmp``) never match the glob, so a reader sees only
    whole shards; shards that land after the build are visible at once.
    """
    directories = directories if isinstance(directories, list) else [directories]
    patterns = [
        "'" + str(d / "**" / "*.parquet").replace("'", "''") + "'"
        for d in directories
        if d.is_dir() and any(d.rglob("*.parquet"))
    ]
    if patterns:
        return f"SELECT * FROM read_parquet([{', '.join(patterns)}], union_by_name = true, hive_partitioning = false)"
    columns = ", ".join(f"CAST(NULL AS {_duck_type(f.type)}) AS {f.name}" for f in schema)
    return f"SELECT {columns} WHERE false"


# Columns that only some label versions carry (refine-labels adds them); NULL where absent.
OPTIONAL_LABEL_COLUMNS = {"cue_agreement": "FLOAT", "refine_change": "FLOAT", "source_run": "VARCHAR",
                          "shape_score": "FLOAT",  # shape_score: absent from shards written before it existed
                          "refine_action": "VARCHAR", "refine_reason": "VARCHAR"}


def _read(path_or_glob: Path | str) -> str:
    text = str(path_or_glob).replace("'", "''")
    return f"SELECT * FROM read_parquet('{text}', union_by_name = true, hive_partitioning = false)"


def _live_sql(root: Path, exclude_runs: list[str]) -> str:
    """Live shards under ``root``, minus the runs served from compacted copies.

    The ``run=<id>`` folders are read as a hive partition, so the exclusion prunes those files by
    path without opening them; runs that start after the build are visible at once.
    """
    pattern = str(root / "**" / "*.parquet").replace("'", "''")
    sql = (f"SELECT * EXCLUDE (run) FROM read_parquet('{pattern}', hive_partitioning = true, "
           "hive_types = {'run': VARCHAR})")
    if exclude_runs:
        listing = ", ".join("'" + r.replace("'", "''") + "'" for r in exclude_runs)
        sql += f" WHERE run NOT IN ({listing})"
    return sql


def _labels_sql(workdir: Workdir) -> str:
    """Every label version: finished runs from one compacted file each, the rest from live shards."""
    done = completed_runs(workdir)
    parts = []
    for root in (workdir.labels_root, workdir.refined_root):
        if not root.is_dir() or not any(root.rglob("*.parquet")):
            continue
        compacted_runs = []
        for run_dir in sorted(root.glob("run=*")):
            run_id, files = run_dir.name.removeprefix("run="), shard_files(run_dir)
            if files and run_id in done:
                target = compact_dir(workdir) / f"{root.name}-{run_dir.name}.parquet"
                parts.append(_read(compacted(files, target, LABEL_SCHEMA)))
                compacted_runs.append(run_id)
        parts.append(_live_sql(root, compacted_runs))
    source = " UNION ALL BY NAME ".join(f"({p})" for p in parts) if parts else _source_sql([], LABEL_SCHEMA)
    with duckdb.connect() as con:
        present = {row[0] for row in con.execute(f"DESCRIBE {source}").fetchall()}
    extra = [f"CAST(NULL AS {kind}) AS {name}" for name, kind in OPTIONAL_LABEL_COLUMNS.items() if name not in present]
    return f"SELECT * REPLACE ({_absolute('path', workdir.root)} AS path){''.join(', ' + e for e in extra)} FROM ({source})"


def _absolute(column: str, root: Path) -> str:
    """SQL turning a stored path (relative to the workdir, see engine.images.paths) into a file path."""
    prefix = (str(root).rstrip("/") + "/").replace("'", "''")
    return f"CASE WHEN {column} IS NULL OR starts_with({column}, '/') THEN {column} ELSE '{prefix}' || {column} END"


def _images_sql(workdir: Workdir) -> str:
    files = shard_files(workdir.manifest_dir)
    if not files:
        return _source_sql([], MANIFEST_SCHEMA)
    paths = ", ".join(f"{_absolute(c, workdir.root)} AS {c}" for c in ("path", "depth_path", "thermal_path", "flow_path"))
    duplicates = f"list_transform(duplicate_paths, lambda p: {_absolute('p', workdir.root)}) AS duplicate_paths"
    source = _read(compacted(files, compact_dir(workdir) / "images.parquet", MANIFEST_SCHEMA))
    return (f"SELECT * REPLACE ({paths}, {duplicates}) FROM ({source})")


def view_statements(workdir: Workdir) -> list[str]:
    """The CREATE VIEW statements for the catalog of ``workdir``."""
    quality = ", ".join(f"l.{c}" for c in QUALITY_COLUMNS)
    return [
        f"CREATE VIEW images AS {_images_sql(workdir)}",
        f"CREATE VIEW annotations AS {_source_sql(workdir.annotations_dir, ANNOTATION_SCHEMA)}",
        f"CREATE VIEW runs AS {_source_sql(workdir.runs_dir, RUN_SCHEMA)}",
        f"CREATE VIEW labels AS {_labels_sql(workdir)}",
        "CREATE VIEW captions AS SELECT image_id, run_id, caption, phrase, category FROM labels "
        "WHERE caption IS NOT NULL",
        "CREATE VIEW detections AS SELECT image_id, run_id, i AS box_index, boxes_xyxy[i][1] AS x0, "
        "boxes_xyxy[i][2] AS y0, boxes_xyxy[i][3] AS x1, boxes_xyxy[i][4] AS y1, box_scores[i] AS score, "
        "box_labels[i] AS label FROM labels, range(1, len(boxes_xyxy) + 1) AS r(i)",
        "CREATE VIEW masks AS SELECT image_id, run_id, height, width, mask_rle, mask_area_frac FROM labels "
        "WHERE mask_rle IS NOT NULL",
        "CREATE VIEW reviews AS SELECT image_id, run_id, "
        "arg_max(verdict, created_at) FILTER (WHERE verdict IN ('accept', 'reject')) AS review_verdict, "
        "arg_max(comment, created_at) FILTER (WHERE comment IS NOT NULL AND comment <> '') AS review_comment, "
        "arg_max(annotator, created_at) FILTER (WHERE verdict IN ('accept', 'reject')) AS reviewed_by, "
        "max(created_at) AS reviewed_at, count(*) AS review_count "
        "FROM annotations WHERE kind = 'review' GROUP BY image_id, run_id",
        f"CREATE VIEW label_quality AS SELECT l.image_id, l.run_id, l.path, l.shard, l.status, l.error, "
        f"l.height, l.width, l.caption, l.phrase, l.category, {quality}, l.cue_agreement, l.refine_change, "
        f"l.source_run, l.refine_action, l.refine_reason, r.review_verdict, r.review_comment, "
        f"r.reviewed_by, r.reviewed_at, coalesce(r.review_verdict = 'reject', false) AS needs_relabel "
        f"FROM labels AS l LEFT JOIN reviews AS r ON r.image_id = l.image_id AND r.run_id = l.run_id",
    ]


def build_catalog(workdir: str | Path | Workdir) -> Path:
    """(Re)write ``catalog.duckdb`` with views over the workdir's Parquet shards; returns its path.

    The new catalog is written beside the old one, checkpointed, and checked (no changes left in
    DuckDB's write-ahead log, every view present and queryable from a read-only connection) before
    it replaces the old one; on any failure the old catalog stays and the error names the file.

    Raises:
        WriteError: (an ``OSError``) the new catalog could not be written or failed its check.
        ValueError: a shard cannot be read at all (its footer is damaged).
    """
    workdir = workdir if isinstance(workdir, Workdir) else Workdir.at(workdir)
    with names_path(workdir.root):
        workdir.root.mkdir(parents=True, exist_ok=True)
    target = workdir.catalog_path
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    wal = Path(f"{tmp}.wal")
    tmp.unlink(missing_ok=True)
    wal.unlink(missing_ok=True)
    try:
        try:
            statements = view_statements(workdir)
        except duckdb.Error as err:
            raise ValueError(f"{target}: cannot build the catalog from the shards ({err})") from err
        try:
            with duckdb.connect(str(tmp)) as con:
                for statement in statements:
                    con.execute(statement)
                con.execute("CHECKPOINT")  # raises on a full disk, where close() would stay silent
        except duckdb.Error as err:
            raise _catalog_error(target, str(err)) from err
        problem = check_catalog(tmp)
        if problem:
            raise _catalog_error(target, f"the new catalog failed its check: {problem}")
        with names_path(target):
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        wal.unlink(missing_ok=True)
    return target


def _catalog_error(target: Path, problem: str) -> WriteError:
    code = errno.ENOSPC if "No space left" in problem else None
    return WriteError(code, f"{problem}; the previous catalog (if any) is kept", str(target))


def check_catalog(path: str | Path) -> str | None:
    """``None`` when the catalog file at ``path`` holds every view and each answers a query; else the problem.

    A leftover write-ahead log means DuckDB could not move the views into the file itself (full disk):
    without it the file holds no views, so that counts as a failure too.
    """
    wal = Path(f"{path}.wal")
    if wal.is_file() and wal.stat().st_size > 0:
        return f"views left only in the write-ahead log {wal.name} (disk full?)"
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            found = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
            missing = [name for name in VIEW_NAMES if name not in found]
            if missing:
                return f"views missing: {', '.join(missing)}"
            for name in VIEW_NAMES:  # binds every view: its files and columns exist (reads no data pages)
                con.execute(f"SELECT * FROM {name} LIMIT 0").fetchall()
    except duckdb.Error as err:
        return str(err)
    return None


def connect_readonly(catalog_path: str | Path) -> duckdb.DuckDBPyConnection:
    """Open a catalog read-only, with a clear error if it does not exist."""
    catalog_path = Path(catalog_path)
    if not catalog_path.is_file():
        raise ValueError(f"{catalog_path}: no catalog here; run `sodforge catalog build --workdir DIR` first")
    return duckdb.connect(str(catalog_path), read_only=True)
