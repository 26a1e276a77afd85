"""``sodforge refine``: unsupervised label refinement; ``sodforge transfer``: adapter-tuning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from sodforge.output import console, fail

_fail = fail


def _overrides(backbone: str | None, size: int | None, sce_epochs: int | None, epochs: int | None,
               device: str | None, init: str | None) -> dict:
    values: dict = {}
    for key, value in (("backbone", backbone), ("size", size), ("device", device), ("init", init)):
        if value is not None:
            values[key] = value
    if sce_epochs is not None:
        values["sce"] = {"epochs": sce_epochs}
    if epochs is not None:
        values["detector"] = {"epochs": epochs}
    return values


def register(app: typer.Typer) -> None:
    @app.command()
    def refine(
        workdir: Annotated[Path, typer.Option("--workdir", "-w", help="Workdir of a labelling run (holds catalog/).")] = Path("data"),
        labels: Annotated[Path | None, typer.Option("--labels", help="Any folder of label shards (*.parquet or run=<id>/*.parquet, e.g. from import-masks) to refine instead of a workdir's run.")] = None,
        out: Annotated[Path | None, typer.Option("--out", help="With --labels: folder for the refined shards (OUT/run=refine-<id>/) and the run's files (OUT/refine/).")] = None,
        run: Annotated[str | None, typer.Option("--run", help="Labelling run id to refine (default: the newest; with --labels: the run=<id> folder when there are several).")] = None,
        params: Annotated[Path | None, typer.Option(help="params.yaml to read the 'refine' section from (default: ./params.yaml if present).")] = None,
        backbone: Annotated[str | None, typer.Option(help="Backbone name (resnet50, tiny, ...).")] = None,
        size: Annotated[int | None, typer.Option(help="Square training side in px.")] = None,
        sce_epochs: Annotated[int | None, typer.Option(help="Epochs of the saliency cue extractor (stage 1).")] = None,
        epochs: Annotated[int | None, typer.Option(help="Epochs of the detector with SPR (stage 2).")] = None,
        init: Annotated[str | None, typer.Option(help="Start SPR from 'source' masks or from 'cues'.")] = None,
        device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N")] = None,
        catalog: Annotated[bool, typer.Option("--catalog/--no-catalog", help="Rebuild catalog.duckdb afterwards.")] = True,
        record_run: Annotated[bool, typer.Option("--record-run/--no-record-run", help="Add the run to catalog/runs.")] = True,
        json_out: Annotated[Path | None, typer.Option("--json", help="Also write the run summary to this JSON file.")] = None,
    ) -> None:
        """Refine labels (PCL-SD cues + detector with SPR) into a NEW labelled version, never silently worse.

        The run checks itself on held-out images; refined masks are written only when that check
        passes, else the new version holds the source masks. The last lines say which, and why.
        """
        if (labels is None) != (out is None):
            _fail("--labels and --out go together (refine a label folder into OUT); without them, --workdir is refined")
        if labels is not None:
            from engine.refine.plan import find_label_folder

            try:
                find_label_folder(labels, run)  # a bad folder fails here, before Prefect and torch load
            except ValueError as err:
                _fail(str(err))
        from flows.refine_labels import decision_message, refine_labels

        if params is None and Path("params.yaml").is_file():
            params = Path("params.yaml")
        try:
            summary = refine_labels(
                workdir=str(workdir), source_run=run, params_file=str(params) if params else None,
                overrides=_overrides(backbone, size, sce_epochs, epochs, device, init),
                build_catalog=catalog, record_run=record_run,
                labels=str(labels) if labels else None, out=str(out) if out else None,
            )
            if json_out is not None:
                from engine.storage import write_text_atomic

                write_text_atomic(json.dumps(summary, indent=1), json_out)
        except (ValueError, OSError) as err:  # bad input, or a failed write (the message names the file)
            _fail(str(err))
        console.print_json(json.dumps(summary))
        colour = "green" if summary["decision"] == "refined" else "yellow"
        console.print(Text(summary["decision"], style=colour) + Text(": " + decision_message(summary)))

    @app.command()
    def transfer(
        target: Annotated[Path, typer.Argument(help="Target set folder: images/ (+ depth/, thermal/ or flow/; masks/ only to score).")],
        detector: Annotated[Path | None, typer.Option(help="detector.pt of a refinement run (default: the newest under --workdir).")] = None,
        workdir: Annotated[Path, typer.Option("--workdir", "-w", help="Workdir whose newest refine run gives the detector.")] = Path("data"),
        out: Annotated[Path, typer.Option(help="Output folder for adapted.pt and transfer.json.")] = Path("transfer-run"),
        params: Annotated[Path | None, typer.Option(help="params.yaml (the 'refine' section; default ./params.yaml if present).")] = None,
        epochs: Annotated[int | None, typer.Option(help="Adapter epochs.")] = None,
        size: Annotated[int | None, typer.Option(help="Square training side in px (use the detector's).")] = None,
        device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N")] = None,
    ) -> None:
        """Adapter-tune a trained detector on a target set (only the adapter trains)."""
        from flows.transfer import transfer as transfer_flow

        if params is None and Path("params.yaml").is_file():
            params = Path("params.yaml")
        overrides = _overrides(None, size, None, None, device, None)
        if epochs is not None:
            overrides["adapter"] = {"epochs": epochs}
        try:
            summary = transfer_flow(target=str(target), detector=str(detector) if detector else None, workdir=str(workdir), out_dir=str(out),
                                    params_file=str(params) if params else None, overrides=overrides)
        except ValueError as err:
            _fail(str(err))
        console.print_json(json.dumps({k: v for k, v in summary.items() if k != "history"}))
