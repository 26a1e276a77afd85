"""``sodforge export``: a workdir's labels as DUTS-style folders, COCO RLE JSON or HF Parquet."""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


class ExportFormat(StrEnum):
    duts = "duts"
    coco = "coco"
    hf = "hf"


def export(
    workdir: Annotated[Path, typer.Option("--workdir", "-w", help="Workdir holding catalog.duckdb.")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="duts: Image/*.jpg + Mask/*.png; "
                                                 "coco: annotations.json (RLE) + images/; hf: Parquet for datasets.")],
    out: Annotated[Path, typer.Option(help="Output folder (must be empty, or an earlier export with --overwrite).")],
    where: Annotated[str | None, typer.Option(help="SQL condition on the catalog's label_quality view (+ mask_rle), e.g. "
                                                   "\"quality_score >= 0.5 AND status = 'ok'\" (default: status = 'ok').")] = None,
    run: Annotated[str | None, typer.Option(help="Labelling run id (default: the run that completed last; the output names it).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier export in --out.")] = False,
) -> None:
    """Export the labels of one labelling run, filtered with SQL, for use outside sodforge."""
    from rich.logging import RichHandler

    from engine.export import EXPORTERS

    logger = logging.getLogger("sodforge")
    if not logger.handlers:
        logger.addHandler(RichHandler(console=err_console, show_time=False, show_path=False))
        logger.setLevel(logging.INFO)
    try:
        result = EXPORTERS[format.value](workdir, out, where=where, run_id=run, overwrite=overwrite)
    except ValueError as err:
        err_console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    console.print(f"exported {result.exported} of {result.selected} labels of run {result.run_id} "
                  f"({result.where}) as {result.format} to {result.out}")
    if run is None:
        console.print(f"(no --run given: run {result.run_id} is the labelling run that completed last; "
                      f"list runs with: sodforge catalog sql \"SELECT run_id, state, finished_at, models FROM runs\" "
                      f"--workdir {workdir})", markup=False)
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} skipped[/yellow] (reasons in {Path(result.out) / 'export.json'})")
    if result.reencoded:
        console.print(f"{result.reencoded} images re-encoded (EXIF rotation or format); the rest copied byte for byte")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
