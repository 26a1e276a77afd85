"""The ``runs`` table: one Parquet row per labelling run, rewritten atomically as it progresses.

A run record survives interrupted reruns: an attempt on a run that already completed never turns
it back into ``running`` with zero counts. ``started_at`` is the start of the run's first attempt,
``finished_at`` the end of its latest completed attempt, ``attempts`` counts every attempt (also
killed ones, with ``last_attempt_at``), ``seconds`` sums the wall time of the completed attempts.
"The newest run" (default of export, refinement, evaluation) is the one that completed last, see
:func:`recency`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.catalog.layout import Workdir
from engine.storage import write_table_atomic

RUN_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("flow", pa.string()),
        ("state", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("models", pa.string()),
        ("params", pa.string()),
        ("shards", pa.int32()),
        ("shards_skipped", pa.int32()),
        ("images", pa.int64()),
        ("ok", pa.int64()),
        ("no_object", pa.int64()),
        ("error", pa.int64()),
        ("seconds", pa.float64()),
        ("attempts", pa.int32()),
        ("last_attempt_at", pa.timestamp("us", tz="UTC")),
    ]
)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RunRecord:
    """One labelling run's identity, parameters and outcome."""

    run_id: str
    flow: str
    models: dict
    params: dict
    started_at: datetime = field(default_factory=utc_now)
    state: str = "running"
    finished_at: datetime | None = None
    shards: int = 0
    shards_skipped: int = 0
    images: int = 0
    ok: int = 0
    no_object: int = 0
    error: int = 0
    seconds: float = 0.0
    attempts: int = 1
    last_attempt_at: datetime | None = None

    def save(self, workdir: Workdir) -> None:
        row = {**vars(self), "models": json.dumps(self.models, sort_keys=True), "params": json.dumps(self.params, sort_keys=True)}
        table = pa.Table.from_pylist([row], schema=RUN_SCHEMA)
        write_table_atomic(table, record_path(workdir, self.run_id))

    def complete(self, counts: dict[str, int], shards: int, shards_skipped: int, seconds: float) -> None:
        """Mark this attempt finished: fresh counts (they cover every shard, skipped ones too)."""
        self.state, self.finished_at = "completed", utc_now()
        self.shards, self.shards_skipped = shards, shards_skipped
        self.ok, self.no_object, self.error = (counts.get(k, 0) for k in ("ok", "no_object", "error"))
        self.images = self.ok + self.no_object + self.error
        self.seconds += seconds


def record_path(workdir: Workdir, run_id: str) -> Path:
    return workdir.runs_dir / f"run={run_id}.parquet"


def load_record(workdir: Workdir, run_id: str) -> RunRecord | None:
    """The stored record of ``run_id``, or None when there is none (or it cannot be read)."""
    path = record_path(workdir, run_id)
    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowInvalid):
        return None
    if not rows:
        return None
    row = rows[0]
    known = {f.name for f in fields(RunRecord)}
    values = {k: v for k, v in row.items() if k in known and v is not None}
    values["models"], values["params"] = json.loads(row["models"] or "{}"), json.loads(row["params"] or "{}")
    return RunRecord(**values)


def begin_attempt(workdir: Workdir, run_id: str, flow: str, models: dict, params: dict) -> RunRecord:
    """Record that an attempt on ``run_id`` starts, and return the record to complete later.

    A run that completed before keeps its state, counts and timings (only ``attempts`` and
    ``last_attempt_at`` change), so a rerun that is killed or fails never erases a finished run.
    A run seen before but never completed keeps its first ``started_at``.
    """
    now = utc_now()
    record = load_record(workdir, run_id)
    if record is None:
        record = RunRecord(run_id, flow, models, params, started_at=now, attempts=0)
    elif record.state != "completed":
        record.state, record.models, record.params = "running", models, params
    record.attempts += 1
    record.last_attempt_at = now
    record.save(workdir)
    return record


def recency(row: dict) -> tuple:
    """Sort key of run records (dicts with ``finished_at``/``started_at``): larger = newer.

    Completed runs order by when they last completed, so rerunning an older configuration makes
    it the newest again; runs that never completed come after every completed one, by start.
    """
    finished, started = row.get("finished_at"), row.get("started_at")
    if finished is not None:
        return (1, finished, row.get("run_id") or "")
    return (0, started or datetime.min.replace(tzinfo=UTC), row.get("run_id") or "")
