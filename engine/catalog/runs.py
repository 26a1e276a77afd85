"""The ``runs`` table: one Parquet row per labelling run, rewritten atomically as it progresses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

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

    def save(self, workdir: Workdir) -> None:
        row = {**vars(self), "models": json.dumps(self.models, sort_keys=True), "params": json.dumps(self.params, sort_keys=True)}
        table = pa.Table.from_pylist([row], schema=RUN_SCHEMA)
        write_table_atomic(table, workdir.runs_dir / f"run={self.run_id}.parquet")
