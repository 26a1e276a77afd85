"""``sodforge export``: a workdir's labels as DUTS-style folders, COCO RLE JSON or HF Parquet."""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from sodforge.output import err_console, fail, say, say_labelled


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
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier export in --out (only once the new one is "
                                                 "complete: a killed export keeps the earlier one).")] = False,
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
    except (ValueError, OSError) as err:  # bad input, or a failed write (named); an earlier export is kept
        fail(err)
    say(result.summary())
    if run is None:
        say(f"(no --run given: run {result.run_id} is the labelling run that completed last; "
            f"list runs with: sodforge catalog sql \"SELECT run_id, state, finished_at, models FROM runs\" "
            f"--workdir {workdir})")
    if result.skipped:
        say_labelled(f"{len(result.skipped)} skipped", f"(reasons in {Path(result.out) / 'export.json'})", "yellow")
    if result.reencoded:
        say(f"{result.reencoded} images re-encoded (EXIF rotation or format); the rest copied byte for byte")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
