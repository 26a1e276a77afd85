"""``sodforge``: the command line over the engine, the flows and the catalog.

Every command has ``--help``. Heavy imports (torch, transformers, Prefect) happen inside commands,
so ``sodforge --help`` and catalog queries stay fast.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sodforge.commands import register_all
from sodforge.env import configure_environment, project_root, reap_orphaned_servers
from sodforge.output import console, fail, literal, say, warn

app = typer.Typer(help="Build salient-object datasets and models from unlabelled images.", no_args_is_help=True)
catalog_app = typer.Typer(help="Query and rebuild the DuckDB catalog.", no_args_is_help=True)
models_app = typer.Typer(help="Build or inspect models.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(models_app, name="models")
WorkdirOpt = Annotated[Path, typer.Option("--workdir", "-w", help="Working directory holding catalog.duckdb.")]


@app.callback()
def _main() -> None:
    configure_environment()
    reaped = reap_orphaned_servers()
    if reaped:
        say(f"stopped {len(reaped)} temporary Prefect server(s) left running by a killed sodforge run "
            f"(pids {', '.join(map(str, reaped))})", err=True)


_fail = fail


@app.command()
def sample(
    out: Annotated[Path, typer.Argument(help="Folder to write images/, masks/ and depth/ into.")],
    count: Annotated[int, typer.Option(help="Number of images.")] = 48,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
    params: Annotated[Path | None, typer.Option(help="Take count/seed/size from this params.yaml's 'sample'.")] = None,
) -> None:
    """Generate the sample image set with true masks (and depth maps)."""
    from engine.datasets import generate_sample_set
    from engine.params import SampleParams, load_params

    try:
        settings = load_params(params).sample if params else SampleParams(seed=seed, count=count)
        items = generate_sample_set(out, settings.count, settings.size_hw, settings.seed, settings.with_depth)
    except ValueError as err:
        _fail(str(err))
    say(f"wrote {len(items)} images with true masks to {out}")


def _finish_if_current(images: Path, workdir: Path, models: str, shard_size: int | None, params: Path | None,
                       captioner: str | None) -> dict | None:
    """The run's summary when it finished before and nothing is left to label (no Prefect, no
    models loaded); None when there is work to do."""
    from engine.catalog import Workdir
    from engine.catalog.lock import workdir_lock
    from engine.images.manifest import ingest
    from engine.labeling.plan import finish_if_current, label_params

    settings = label_params(params, models, shard_size)
    wd = Workdir.at(workdir)
    if not wd.labels_root.is_dir():
        return None  # a first run: nothing can be current yet
    with workdir_lock(wd.root, "a labelling run"):
        manifests = ingest(images.resolve(), wd.manifest_dir, settings.ingest.shard_size,
                           settings.ingest.max_pixels).shard_paths
        return finish_if_current(wd, settings, manifests, captioner)


def _run_label(images: Path, workdir: Path, models: str, shard_size: int | None, params: Path | None,
               batch_size: int | None, dask_workers: int = 0, dask_address: str | None = None,
               captioner: str | None = None, gpus: str | None = None) -> dict:
    from engine.images.manifest import check_has_images
    from engine.labeling.plan import choose_run_captioner, label_params

    overrides = {"label": {"batch_size": batch_size}} if batch_size is not None else None
    settings = label_params(params, models, shard_size, overrides)  # bad parameters: fail before any work
    check_has_images(images)  # so does a folder without images
    if captioner is not None:  # an explicit --captioner that cannot be used stops here, before any work
        choose_run_captioner(settings.models, captioner)
    summary = _finish_if_current(images, workdir, models, shard_size, params, captioner)
    if summary is not None:
        say(f"nothing to label: run {summary['run_id']} is complete and every shard is current")
        return summary
    from flows.build_pseudo_labels import build_pseudo_labels, task_runner
    from flows.gpu_cluster import parse_gpus
    from sodforge.env import quiet_model_libraries

    quiet_model_libraries()
    flow = build_pseudo_labels.with_options(task_runner=task_runner(dask_workers, dask_address, parse_gpus(gpus)))
    return flow(
        images=str(images), workdir=str(workdir), models=models, shard_size=shard_size,
        params_file=str(params) if params else None, overrides=overrides, captioner=captioner,
    )


@app.command()
def label(
    images: Annotated[Path, typer.Argument(help="Folder of images (or a set folder with images/, depth/...).")],
    workdir: WorkdirOpt = Path("sodforge-run"),
    models: Annotated[str, typer.Option(help="Model profile: tiny (offline, meaningless masks), base, large, or one from params.yaml.")] = "tiny",
    shard_size: Annotated[int | None, typer.Option(help="Images per shard (default: params.yaml or 512).", min=1)] = None,
    params: Annotated[Path | None, typer.Option(help="params.yaml to read (default: ./params.yaml if present).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per model batch.", min=1)] = None,
    captioner: Annotated[str | None, typer.Option(help="Fine-tuned captioner checkpoint to caption with (e.g. models/captioner-human); "
                                                       "'none': the profile's captioner. Default: params.yaml models.captioner_checkpoint.")] = None,
    dask_workers: Annotated[int, typer.Option(help="Scale out on a local Dask cluster of N worker processes (127.0.0.1).", min=0)] = 0,
    dask_address: Annotated[str | None, typer.Option(help="Scale out on an existing Dask cluster (tcp://host:8786).")] = None,
    gpus: Annotated[str | None, typer.Option(help="One model replica per GPU: 'all' or a list like 0,1,2,3 (Dask workers pinned with CUDA_VISIBLE_DEVICES).")] = None,
) -> None:
    """Run the labelling flow in-process (no server needed); the catalog lands in WORKDIR.

    A rerun with nothing left to label finishes at once, without starting Prefect. One run per
    WORKDIR at a time: a second one stops with a message naming the process that holds it.
    """
    if not images.is_dir():
        _fail(f"{images}: images folder not found")
    if params is None and Path("params.yaml").is_file():
        params = Path("params.yaml")
    if params is not None and not params.is_file():
        _fail(f"{params}: parameters file not found")
    try:
        summary = _run_label(images, workdir, models, shard_size, params, batch_size, dask_workers, dask_address,
                             captioner, gpus)
    except (ValueError, OSError) as err:  # bad input, or a write that failed (the message names the file)
        _fail(str(err))
    console.print_json(json.dumps(summary))
    say(f"captioner: {summary['captioner']}")
    if summary.get("skipped_files"):
        warn(f"{summary['skipped_files']} files are not images and were skipped "
             f"(listed in {workdir / 'reports' / 'ingest_skipped_files.tsv'})")
    if summary.get("error"):
        warn(f"{summary['error']} images could not be labelled (status = error, the error names the file): "
             f"sodforge catalog sql \"SELECT path, error FROM label_quality WHERE status = 'error'\" --workdir {workdir}")
    say(f"catalog: {summary['catalog']}  (try: sodforge catalog summary --workdir {workdir})")


@app.command()
def demo(
    workdir: WorkdirOpt = Path("demo-run"),
    count: Annotated[int, typer.Option(help="Sample images to generate.")] = 48,
    params: Annotated[Path | None, typer.Option(help="params.yaml (default: the project's, CPU-sized).")] = None,
) -> None:
    """Generate a sample set and run the whole chain on it with the tiny models (label -> refine ->
    train -> evaluate); print the summary, the evaluation table and where to look."""
    from engine.datasets import generate_sample_set
    from flows.data_engine import data_engine
    from sodforge.env import quiet_model_libraries

    quiet_model_libraries()
    params = params or (project_root() / "params.yaml")
    started = time.perf_counter()
    raw = workdir / "raw"
    generate_sample_set(raw, count=count)
    console.rule("data-engine flow: build-pseudo-labels -> refine-labels -> train-sod -> evaluate (tiny models)")
    summary = data_engine(images=str(raw), workdir=str(workdir), models="tiny",
                          params_file=str(params) if params.is_file() else None)
    console.rule("labelling summary")
    _print_summary(workdir / "catalog.duckdb")
    console.rule("evaluation against the true masks")
    _print_metrics(workdir / "reports" / "data-engine")
    say(f"total: {time.perf_counter() - started:.0f} s (labelling run {summary['labelling_run']}, "
        f"refined run {summary['refined_run']})")
    say(f"model trained on the {summary['trained_on_version']} labels: {summary['trained_on_reason']}")
    console.print("\n[bold yellow]Tiny random models give meaningless masks[/bold yellow] (hence the poor scores above): "
                  "they exercise every step offline.")
    say(
        "Real labels need real weights:\n"
        f"  sodforge label {raw} --workdir run-base --models base     (Hugging Face ids; see params.yaml profiles)\n"
        "  or point models.profiles.<name>.{captioner,grounder,segmenter} at local directories or official .pth files.\n\n"
        f"Where to look:\n  catalog      {workdir / 'catalog.duckdb'}   (sodforge catalog summary --workdir {workdir})\n"
        f"  label shards {workdir / 'catalog'}\n  previews     {workdir / 'reports'}/run=*/ (contact sheets)\n"
        f"  evaluation   {workdir / 'reports' / 'data-engine'}/*/ (metrics.json, table, PR curves, overlays)\n"
        f"  model        {workdir / 'models' / 'sod' / 'model.pt'}\n"
        f"  query        sodforge catalog sql \"SELECT status, count(*) FROM label_quality GROUP BY 1\" --workdir {workdir}"
    )


def _print_metrics(reports: Path) -> None:
    """One row per metrics.json under ``reports`` (full set of measures: the JSON and table.md)."""
    keys = ("MAE", "Smeasure", "wFmeasure", "maxFm", "meanFm", "meanEm")
    table = Table("scored", "n", *keys)
    for path in sorted(reports.glob("*/metrics.json")):
        for block in json.loads(path.read_text()).values():
            table.add_row(literal(path.parent.name.replace("_", " ")), str(block.get("images", "")),
                          *(f"{block[k]:.3f}" for k in keys))
    console.print(table)


@app.command("check-params")
def check_params(
    params: Annotated[Path, typer.Argument(help="Parameters file to check.")] = Path("params.yaml"),
) -> None:
    """Check every section of a params.yaml (unknown sections or keys, types, ranges) without running anything."""
    from engine.params import check_params_file

    try:
        sections = check_params_file(params)
    except ValueError as err:
        _fail(str(err))
    say(f"{params}: ok ({len(sections)} sections: {', '.join(sections)})")


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port of the local Prefect API (127.0.0.1 only).")] = 4200,
) -> None:
    """Start a local Prefect server (SQLite, 127.0.0.1) and serve the deployments; Ctrl+C stops both."""
    from sodforge.server import serve_with_local_server

    serve_with_local_server(project_root(), port, console)


@catalog_app.command("build")
def catalog_build(workdir: WorkdirOpt = Path("data")) -> None:
    """Rebuild WORKDIR/catalog.duckdb (views only) from the Parquet shards."""
    from engine.catalog import build_catalog

    try:
        path = build_catalog(workdir)
    except (ValueError, OSError) as err:
        _fail(str(err))
    say(f"catalog written and checked: {path}")


@catalog_app.command("sql")
def catalog_sql(
    query: Annotated[str, typer.Argument(help="SQL over the views images, label_quality, captions, detections, masks, annotations, runs.")],
    workdir: WorkdirOpt = Path("data"),
    json_out: Annotated[bool, typer.Option("--json", help="Print rows as JSON lines.")] = False,
) -> None:
    """Run a read-only SQL query against the catalog and print the rows."""
    import duckdb

    from engine.catalog import connect_readonly

    try:
        with connect_readonly(workdir / "catalog.duckdb") as con:
            cursor = con.execute(query)
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
    except (ValueError, duckdb.Error) as err:
        _fail(str(err))
    if json_out:
        for row in rows:
            typer.echo(json.dumps(dict(zip(columns, row, strict=True)), default=str))
        return
    table = Table()
    for column in columns:
        table.add_column(literal(column))
    for row in rows:
        table.add_row(*(literal("" if v is None else v) for v in row))
    console.print(table)


def _print_summary(catalog: Path) -> None:
    from engine.catalog import summarize

    for run in summarize(catalog):
        table = Table(title=literal(f"labelling run {run.run_id}"), show_header=False)
        table.add_row("images", str(run.images))
        table.add_row("statuses", literal(", ".join(f"{k}: {v}" for k, v in run.statuses.items())))
        table.add_row("mean quality (ok)", "-" if run.mean_quality is None else f"{run.mean_quality:.3f}")
        table.add_row("categories", literal(f"{run.categories}  top: " + ", ".join(f"{c} ({n})" for c, n in run.top_categories)))
        for error in run.error_examples:
            table.add_row("error", literal(error))
        console.print(table)


@catalog_app.command("summary")
def catalog_summary(workdir: WorkdirOpt = Path("data")) -> None:
    """Per labelling run: image count, statuses, mean quality, top categories, example errors."""
    try:
        _print_summary(workdir / "catalog.duckdb")
    except ValueError as err:
        _fail(str(err))


@models_app.command("tiny")
def models_tiny(out: Annotated[Path, typer.Argument(help="Folder for blip/, grounding_dino/ and sam/.")]) -> None:
    """Build and save the tiny random BLIP, GroundingDINO and SAM (loadable with from_pretrained)."""
    from engine.models import build_tiny_models

    for family, path in build_tiny_models(out).items():
        say(f"{family:15s} {path}")


register_all(app)

if __name__ == "__main__":
    app()
