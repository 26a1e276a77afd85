"""Task wrapping the exporters: one export of a workdir's labels (returns the ``export.json`` path)."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from engine.export import EXPORTERS
from tasks.logs import task_logger


@task(name="export-labels", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE, tags=["io"],
      task_run_name="export-{format}")
def export_task(workdir: str, format: str, out: str, where: str | None = None, run_id: str | None = None,
                overwrite: bool = False) -> str:
    """Export the labels of ``run_id`` (default: newest) matching ``where`` as ``format`` (duts|coco|hf)."""
    if format not in EXPORTERS:
        raise ValueError(f"unknown export format {format!r}; known: {sorted(EXPORTERS)}")
    result = EXPORTERS[format](workdir, out, where=where, run_id=run_id, overwrite=overwrite)
    logger = task_logger()
    logger.info("%s", result.summary())
    for entry in result.skipped:
        logger.warning("skipped %s: %s", entry["path"], entry["reason"])
    return str(Path(result.out) / "export.json")
