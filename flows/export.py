"""Flow ``export``: a workdir's labels as DUTS folders, COCO RLE JSON and/or a Hugging Face Parquet set."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from tasks.export import export_task

Format = Literal["duts", "coco", "hf"]


@flow(name="export", log_prints=True)
def export(
    workdir: str = "data",
    out: str = "data/export",
    formats: list[Format] | None = None,
    where: str | None = None,
    run_id: str | None = None,
    overwrite: bool = True,
) -> dict[str, str]:
    """Export the labels of ``run_id`` (default: the newest labelling run) that match ``where``.

    Args:
        workdir: working directory with ``catalog.duckdb``.
        out: one sub-folder per format is written under it (``out/duts``, ``out/coco``, ``out/hf``).
        formats: any of ``duts``, ``coco``, ``hf`` (default: all three).
        where: SQL over the ``label_quality`` columns, e.g. ``quality_score >= 0.5 AND status = 'ok'``
            (default: ``status = 'ok'``).
        run_id: label version to export (``refine-...`` for a refined one).
        overwrite: replace an earlier export in the same folder.
    """
    chosen = formats or ["duts", "coco", "hf"]
    futures = {fmt: export_task.submit(workdir, fmt, str(Path(out) / fmt), where, run_id, overwrite) for fmt in chosen}
    reports: dict[str, Any] = {fmt: future.result() for fmt, future in futures.items()}
    get_run_logger().info("exports: %s", reports)
    create_table_artifact([{"format": k, "report": v} for k, v in reports.items()], key="export",
                          description=f"Exports of {workdir}")
    return reports


def deployments(project: Path) -> list:
    """``export/default``: the sample run's labels from ``data/`` in all three formats."""
    return [
        export.to_deployment(
            name="default",
            parameters={"workdir": str(project / "data"), "out": str(project / "data" / "export")},
            tags=["sodforge"],
            description="Export labels as DUTS folders, COCO RLE JSON and a Hugging Face Parquet set.",
        ),
    ]


if __name__ == "__main__":
    print(export())
