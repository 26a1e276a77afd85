"""``sodforge annotate`` (the web UI), ``sodforge annotations ...`` and ``sodforge finetune-captioner``."""

from __future__ import annotations

import getpass
import json
import socket
from pathlib import Path
from typing import Annotated

import typer

from sodforge.output import console, fail, say, say_labelled

annotations_app = typer.Typer(help="Select, export, import and inspect human annotations.", no_args_is_help=True)

ImagesOpt = Annotated[Path, typer.Option("--images", "-i", help="Folder of the image set (or a set folder with images/).")]
WorkdirOpt = Annotated[Path, typer.Option("--workdir", "-w", help="Working directory (annotations + catalog).")]
ParamsOpt = Annotated[Path | None, typer.Option(help="params.yaml to read (default: ./params.yaml if present).")]


_fail = fail


def _params(params: Path | None) -> str | None:
    if params is not None and not params.is_file():
        _fail(f"{params}: parameters file not found")
    return str(params) if params else ("params.yaml" if Path("params.yaml").is_file() else None)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def annotate(
    images: ImagesOpt,
    workdir: WorkdirOpt = Path("data"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=1, max=65535)] = 8765,
    annotator: Annotated[str | None, typer.Option(help="Default annotator name (the page can change it).")] = None,
    select: Annotated[bool, typer.Option(help="Select a first round (params 'annotate') when none exists.")] = True,
    params: ParamsOpt = None,
) -> None:
    """Start the annotation UI on http://127.0.0.1:PORT (texts, skips, reviews; Ctrl+C stops)."""
    import uvicorn

    from annotation_ui import UISettings, create_app
    from engine.annotations import read_rounds
    from engine.catalog import Workdir

    if not images.is_dir():
        _fail(f"{images}: images folder not found")
    if not _port_free(port):
        _fail(f"port {port} on 127.0.0.1 is in use; pick another with --port")
    if select and not read_rounds(Workdir.at(workdir)):
        _select(images, workdir, _params(params), {})
    try:
        app = create_app(UISettings(images=images, workdir=workdir, annotator=annotator or getpass.getuser()))
    except ValueError as err:
        _fail(str(err))
    console.print(f"annotation UI: [bold]http://127.0.0.1:{port}/[/bold]  ({len(app.state.ui.images)} images; Ctrl+C stops)")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _select(images: Path, workdir: Path, params_file: str | None, overrides: dict) -> dict:
    from tasks.annotate import load_select_params, select_round_task

    try:
        settings = load_select_params(params_file, overrides)
        result = select_round_task.fn(str(images), str(workdir), vars(settings))
    except ValueError as err:
        _fail(str(err))
    if result["selected"]:
        say(f"round {result['round']}: selected {result['selected']} of {result['images']} images "
            f"({settings.strategy}) -> {result['round_path']}")
    else:
        console.print("nothing left to select: every image is in a round or annotated")
    return result


@annotations_app.command("select")
def select_cmd(
    images: ImagesOpt,
    workdir: WorkdirOpt = Path("data"),
    fraction: Annotated[float | None, typer.Option(help="Fraction of the set (default params: 0.15).")] = None,
    count: Annotated[int | None, typer.Option(help="Number of images (overrides fraction).")] = None,
    strategy: Annotated[str | None, typer.Option(help="spread | worst_quality")] = None,
    params: ParamsOpt = None,
) -> None:
    """Select the next round of images to annotate (never an image twice)."""
    overrides = {k: v for k, v in {"fraction": fraction, "count": count, "strategy": strategy}.items() if v is not None}
    _select(images, workdir, _params(params), overrides)


@annotations_app.command("export")
def export_cmd(
    images: ImagesOpt,
    out: Annotated[Path, typer.Argument(help="Label Studio task JSON file to write.")],
    workdir: WorkdirOpt = Path("data"),
    run_id: Annotated[str | None, typer.Option(help="Labelling run for predictions (default: newest).")] = None,
    url_prefix: Annotated[str, typer.Option(help="Prefix of data.image (Label Studio local files).")] = "/data/local-files/?d=",
    label_config: Annotated[Path | None, typer.Option(help="Also write the Label Studio labelling config XML here.")] = None,
) -> None:
    """Export tasks + annotations (+ pseudo-label boxes as predictions) as Label Studio JSON."""
    from engine.annotations import AnnotationStore, ImageSet
    from engine.annotations.labelstudio import LABEL_CONFIG, export_tasks
    from engine.annotations.review import ReviewIndex, list_runs
    from engine.catalog import Workdir
    from engine.storage import write_text_atomic

    try:
        image_set = ImageSet.load(images, workdir)
        wd = Workdir.at(workdir)
        runs = list_runs(wd)
        run_id = run_id or (runs[0]["run_id"] if runs else None)
        index = ReviewIndex(wd)
        labels = {r["image_id"]: index.label(run_id, r["image_id"]) for r in index.rows(run_id)} if run_id else {}
        tasks = export_tasks(image_set, AnnotationStore(wd).rows(), labels, url_prefix)
        write_text_atomic(json.dumps(tasks, indent=1, default=str), out)
        if label_config:
            write_text_atomic(LABEL_CONFIG, label_config)
    except (ValueError, OSError) as err:
        _fail(str(err))
    say(f"wrote {len(tasks)} tasks to {out}")


@annotations_app.command("import")
def import_cmd(
    images: ImagesOpt,
    tasks_file: Annotated[Path, typer.Argument(help="Label Studio JSON export (list of tasks).")],
    workdir: WorkdirOpt = Path("data"),
) -> None:
    """Import annotations from Label Studio JSON (importing the same file twice adds nothing)."""
    from engine.annotations import AnnotationStore, ImageSet
    from engine.annotations.labelstudio import import_tasks, read_tasks_file

    try:
        found, problems = import_tasks(read_tasks_file(tasks_file), ImageSet.load(images, workdir))
    except ValueError as err:
        _fail(str(err))
    path = AnnotationStore(workdir, refresh_catalog=True).append(found, skip_existing=True)
    for problem in problems[:20]:
        say_labelled("skipped:", problem, "yellow")
    say(f"imported {len(found)} annotations ({'new file ' + path.name if path else 'all already present'}); "
                  f"{len(problems)} problems")


@annotations_app.command("stats")
def stats_cmd(images: ImagesOpt, workdir: WorkdirOpt = Path("data")) -> None:
    """Counts, annotator agreement and the relabel queue, as JSON."""
    from annotation_ui.state import AppState, UISettings

    try:
        state = AppState(UISettings(images=images, workdir=workdir, refresh_catalog=False))
    except ValueError as err:
        _fail(str(err))
    console.print_json(json.dumps(state.stats()))


@annotations_app.command("compact")
def compact_cmd(workdir: WorkdirOpt = Path("data")) -> None:
    """Merge the many small annotation files into one (safe while the UI runs)."""
    from engine.annotations import AnnotationStore

    result = AnnotationStore(workdir, refresh_catalog=True).compact()
    say(f"merged {result.files} files ({result.rows} rows) into {result.merged}" if result.merged else "nothing to compact")


@annotations_app.command("simulate")
def simulate_cmd(
    set_dir: Annotated[Path, typer.Argument(help="Generated sample set (with meta.json).")],
    out: Annotated[Path, typer.Option(help="JSON-lines texts file to write.")] = Path("data/annotations/simulated_texts.jsonl"),
) -> None:
    """Write SIMULATED annotator texts ("red star") for the generated sample set (no person involved)."""
    from engine.annotations.simulated import simulated_texts, write_texts_jsonl

    try:
        rows = simulated_texts(set_dir)
    except ValueError as err:
        _fail(str(err))
    note = "SIMULATED annotator: '<colour> <shape>' from meta.json of the generated sample set; not human texts"
    say(f"wrote {len(rows)} simulated texts to {write_texts_jsonl(rows, out, note)}")


@annotations_app.command("relabel-queue")
def relabel_cmd(images: ImagesOpt, workdir: WorkdirOpt = Path("data")) -> None:
    """Print the paths of images rejected in review and not re-described yet (one per line)."""
    from engine.annotations import AnnotationStore, ImageSet, relabel_queue

    image_set = ImageSet.load(images, workdir)
    for image_id in relabel_queue(AnnotationStore(workdir).rows()):
        if image_id in image_set:
            typer.echo(image_set.get(image_id).path)


def finetune_captioner(
    images: ImagesOpt = Path("data/raw/sample"),
    workdir: WorkdirOpt = Path("data"),
    texts: Annotated[Path | None, typer.Option(help="JSON-lines texts (default: the annotation store of WORKDIR).")] = None,
    out: Annotated[Path, typer.Option(help="Checkpoint directory (the DVC pipeline's own is data/models/captioner; "
                                           "label with it: sodforge label --captioner DIR).")] = Path("models/captioner-human"),
    metrics: Annotated[Path, typer.Option(help="Metric JSON (DVC).")] = Path("data/reports/captioner_metrics.json"),
    models: Annotated[str | None, typer.Option(help="Profile whose captioner is the base (default: params.yaml).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override finetune.epochs.")] = None,
    params: ParamsOpt = None,
) -> None:
    """Fine-tune BLIP on the human texts (resumable) and report phrase match before/after."""
    from flows.finetune_captioner import finetune_captioner_flow

    if texts is not None and not texts.is_file():
        _fail(f"{texts}: texts file not found")
    try:
        result = finetune_captioner_flow(
            images=str(images), workdir=str(workdir), texts=str(texts) if texts else None, out=str(out),
            metrics_file=str(metrics), params_file=_params(params), models=models,
            overrides={"epochs": epochs} if epochs else None,
        )
    except ValueError as err:
        _fail(str(err))
    summary = {k: result[k] for k in ("before", "after", "train_loss_first", "train_loss_last", "reused")}
    console.print_json(json.dumps(summary))
    say(f"checkpoint: {result['out_dir']}  metrics: {metrics}")
    say(f"label with it: sodforge label IMAGES --workdir DIR --captioner {out} "
        f"(or set models.captioner_checkpoint: {out} in params.yaml)")


def register(app: typer.Typer) -> None:
    app.command("annotate")(annotate)
    app.command("finetune-captioner")(finetune_captioner)
    app.add_typer(annotations_app, name="annotations")
