"""Planning a refinement run: which label shards, which images, where outputs go.

Two sources, one plan:

- a workdir's labelling run (``sodforge refine --workdir DIR``)::

    DIR/catalog/labels/run=<source>/shard-*.parquet            source labels (build-pseudo-labels)
    DIR/catalog/labels_refined/run=refine-<id>/shard-*.parquet refined labels (a NEW version)
    DIR/refine/refine-<id>/                                    the run's files (below)

- any folder of label shards (``sodforge refine --labels SRC --out OUT``; e.g. from
  ``sodforge import-masks`` or another auto-labeller; images are found through the ``path`` column)::

    SRC/shard-*.parquet  or  SRC/run=<source>/shard-*.parquet  source labels
    OUT/run=refine-<id>/shard-*.parquet                        refined labels
    OUT/refine/refine-<id>/                                    the run's files

The run's files: plan.json, params.yaml, items.parquet (one row per refinable image, with its
held-out flag), checkpoints (sce.pt, detector.pt), label banks (*.u8), history.json, gate.json,
summary.json. The run id hashes the source shards and the parameters that change labels, so the same
inputs resume the same run and any change makes a new version; the source is never touched.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from engine.catalog.layout import Workdir
from engine.catalog.runs import recency
from engine.images import file_content_id
from engine.images.io import read_size_hw
from engine.images.paths import resolve_stored, shard_root
from engine.params import as_dict, load_section
from engine.refine.data import RefineItem
from engine.refine.gate import holdout_ids
from engine.refine.params import RefineParams
from engine.storage import fingerprint, read_fingerprint, read_table, write_table_atomic

REFINED_LABELS_DIR = "labels_refined"
LABELLING_FLOW = "build-pseudo-labels"
REQUIRED_COLUMNS = ("path", "mask_rle", "height", "width")
ITEM_SCHEMA = pa.schema([("index", pa.int64()), ("image_id", pa.string()), ("path", pa.string()),
                         ("second_path", pa.string()), ("shard", pa.string()), ("mask_rle", pa.string()),
                         ("height", pa.int32()), ("width", pa.int32()), ("holdout", pa.bool_())])


def refined_labels_root(workdir: Workdir) -> Path:
    return workdir.data / REFINED_LABELS_DIR


def refined_labels_dir(workdir: Workdir, run_id: str) -> Path:
    return refined_labels_root(workdir) / f"run={run_id}"


def refine_run_dir(workdir: Workdir, run_id: str) -> Path:
    return workdir.root / "refine" / run_id


@dataclass(frozen=True)
class RefinePlan:
    """A planned run; saved as ``run_dir/plan.json`` so tasks pass only ``run_dir``.

    ``workdir`` is set for workdir runs (catalog, run records, manifests) and None for label folders.
    ``skipped`` maps image ids left out of training (unreadable image, size mismatch) to the reason.
    """

    run_id: str
    source_run: str
    source_dir: str
    out_dir: str
    run_dir: str
    source_shards: tuple[str, ...]
    count: int
    params: RefineParams
    workdir: str | None = None
    skipped: dict[str, str] = dataclasses.field(default_factory=dict)

    def out_path(self, source_shard: str | Path) -> Path:
        return Path(self.out_dir) / Path(source_shard).name

    def path(self, name: str) -> Path:
        return Path(self.run_dir) / name


def find_source_run(workdir: Workdir, source_run: str | None = None) -> str:
    """``source_run`` if its shards exist; else the newest completed build-pseudo-labels run."""
    if source_run:
        if not any(workdir.labels_dir(source_run).glob("shard-*.parquet")):
            raise ValueError(f"{workdir.labels_dir(source_run)}: no label shards for run {source_run!r}")
        return source_run
    runs = []
    for path in sorted(workdir.runs_dir.glob("run=*.parquet")) if workdir.runs_dir.is_dir() else []:
        runs.extend(r for r in read_table(path).to_pylist() if r["flow"] == LABELLING_FLOW and r["state"] == "completed")
    runs = [r for r in runs if any(workdir.labels_dir(r["run_id"]).glob("shard-*.parquet"))]
    if runs:
        return max(runs, key=recency)["run_id"]  # the one that completed last
    found = sorted(p.name.split("=", 1)[1] for p in workdir.labels_root.glob("run=*") if any(p.glob("shard-*.parquet")))
    if len(found) == 1:
        return found[0]
    raise ValueError(f"{workdir.labels_root}: cannot tell which labelling run to refine (found {found or 'none'}); "
                     "name one with source_run")


def find_label_folder(labels: str | Path, run: str | None = None) -> tuple[str, Path]:
    """``(source run id, shard folder)`` of a label folder: ``*.parquet`` shards, or ``run=<id>/`` folders.

    With several ``run=<id>/`` folders, ``run`` must name one (the error lists them).
    """
    root = Path(labels)
    if not root.is_dir():
        raise ValueError(f"{root}: label folder not found")
    runs = sorted(p for p in root.glob("run=*") if p.is_dir() and any(p.glob("*.parquet")))
    if run is not None:
        folder = root / f"run={run}"
        if not any(folder.glob("*.parquet")):
            raise ValueError(f"{root}: no label shards for run {run!r}; found {[p.name for p in runs] or 'none'}")
        return run, folder
    if any(root.glob("*.parquet")):
        name = root.name.removeprefix("run=")
        return name, root
    if len(runs) == 1:
        return runs[0].name.removeprefix("run="), runs[0]
    if runs:
        raise ValueError(f"{root}: several label runs ({', '.join(p.name for p in runs)}); name one with --run")
    raise ValueError(f"{root}: no label shards (*.parquet or run=<id>/*.parquet)")


def result_params(params: RefineParams) -> dict:
    """The parameters that change refined labels (performance knobs excluded)."""
    return {k: v for k, v in as_dict(params).items() if k not in RefineParams.PERFORMANCE_KEYS}


def _second_path(manifest_row: dict | None, choice: str) -> str | None:
    if manifest_row is None or choice == "rgb":
        return None
    names = ("depth", "thermal", "flow") if choice == "auto" else (choice,)
    return next((manifest_row.get(f"{n}_path") for n in names if manifest_row.get(f"{n}_path")), None)


def source_rows(shard: str | Path) -> list[dict]:
    """A source shard's rows, checked for the columns refinement needs (ValueError names the file).

    ``path`` comes back as a file path: stored paths are relative to the shard's root
    (:func:`engine.images.paths.shard_root`) and are resolved here.
    """
    try:
        table = read_table(shard)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise ValueError(f"{shard}: not a readable label shard ({err})") from err
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{shard}: not a label shard (missing columns {missing}; need {list(REQUIRED_COLUMNS)})")
    root = shard_root(shard)
    return [{**row, "path": resolve_stored(row["path"], root)} for row in table.to_pylist()]


def row_status(row: dict) -> str:
    """A row's status; shards from other tools may have none (then: ok when there is a mask)."""
    return row.get("status") or ("ok" if row.get("mask_rle") else "no_object")


def row_image_id(row: dict) -> str | None:
    """A row's image id; shards from other tools may have none (then: the image file's content id)."""
    if row.get("image_id"):
        return row["image_id"]
    try:
        return file_content_id(row["path"])
    except OSError:
        return None


def _image_problem(row: dict) -> str | None:
    """Why the row's image cannot be used for training (None if it can)."""
    try:
        size_hw = read_size_hw(row["path"])
    except Exception as err:  # noqa: BLE001 - any unreadable image is skipped, never fatal
        return f"image not readable: {err}"
    if tuple(size_hw) != (row["height"], row["width"]):
        return f"image is {tuple(size_hw)} but its label is {(row['height'], row['width'])}"
    return None


def _item_rows(shards: list[Path], manifest_dir: Path | None, second: str) -> tuple[list[dict], dict[str, str]]:
    rows, skipped = [], {}
    for shard in shards:
        manifest_path = manifest_dir / shard.name if manifest_dir is not None else None
        manifest = ({r["image_id"]: r for r in read_table(manifest_path).to_pylist()}
                    if manifest_path is not None and manifest_path.is_file() else {})
        for row in source_rows(shard):
            image_id = row_image_id(row)
            if row_status(row) == "error" or row["height"] is None or image_id is None:
                continue  # unreadable images are copied through with their error
            problem = _image_problem(row)
            if problem:
                skipped[image_id] = problem
                continue
            second_path = _second_path(manifest.get(image_id), second)
            rows.append({"index": len(rows), "image_id": image_id, "path": row["path"],
                         "second_path": resolve_stored(second_path, shard_root(manifest_path)) if second_path else None,
                         "shard": shard.stem,
                         "mask_rle": row["mask_rle"], "height": row["height"], "width": row["width"]})
    return rows, skipped


def _shard_identity(shard: Path) -> str:
    return read_fingerprint(shard) or file_content_id(shard)


def _write_plan(source_run: str, source_dir: Path, shards: list[Path], out_root: Path, run_root: Path,
                manifest_dir: Path | None, params: RefineParams, workdir: str | None) -> RefinePlan:
    run_id = "refine-" + fingerprint(source_run, [_shard_identity(s) for s in shards], result_params(params), length=6)
    run_dir = run_root / run_id
    rows, skipped = _item_rows(shards, manifest_dir, params.detector.second_stream)
    if not rows:
        raise ValueError(f"{source_dir}: no readable images with labels to refine")
    gate = params.gate
    held = holdout_ids([r["image_id"] for r in rows if r["mask_rle"]], gate.holdout_fraction, params.seed,
                       gate.holdout_max) if gate.enabled else set()
    for row in rows:
        row["holdout"] = row["image_id"] in held
    plan = RefinePlan(run_id, source_run, str(source_dir), str(out_root / f"run={run_id}"), str(run_dir),
                      tuple(str(s) for s in shards), len(rows), params, workdir, skipped)
    write_table_atomic(pa.Table.from_pylist(rows, schema=ITEM_SCHEMA), run_dir / "items.parquet")
    fields = {k: v for k, v in dataclasses.asdict(plan).items() if k != "params"}
    (run_dir / "plan.json").write_text(json.dumps(fields, indent=1))
    (run_dir / "params.yaml").write_text(yaml.safe_dump({"refine": json.loads(json.dumps(as_dict(params)))}))
    return plan


def plan_refine_run(workdir: str | Path, params: RefineParams) -> RefinePlan:
    """Plan the refinement of a workdir's labelling run (``params.source_run`` or the newest)."""
    wd = Workdir.at(workdir)
    source = find_source_run(wd, params.source_run)
    shards = sorted(wd.labels_dir(source).glob("shard-*.parquet"))
    return _write_plan(source, wd.labels_dir(source), shards, refined_labels_root(wd), wd.root / "refine",
                       wd.manifest_dir, params, str(wd.root))


def plan_label_folder_run(labels: str | Path, out: str | Path, params: RefineParams, run: str | None = None) -> RefinePlan:
    """Plan the refinement of any label-shard folder into ``out`` (see the module docstring)."""
    source, folder = find_label_folder(labels, run or params.source_run)
    shards = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
    out_root = Path(out).resolve()
    if out_root == folder.resolve() or folder.resolve() in out_root.parents:
        raise ValueError(f"--out {out_root} must not be inside the source label folder {folder}")
    return _write_plan(source, folder.resolve(), shards, out_root, out_root / "refine", None, params, None)


def load_plan(run_dir: str | Path) -> RefinePlan:
    """Read ``run_dir/plan.json`` and the resolved ``params.yaml`` back (parameters validated again)."""
    path = Path(run_dir) / "plan.json"
    if not path.is_file():
        raise ValueError(f"{path}: no refinement plan here; plan the run first")
    data = json.loads(path.read_text())
    params = load_section(Path(run_dir) / "params.yaml", "refine", RefineParams)
    return RefinePlan(**{**data, "source_shards": tuple(data["source_shards"]), "params": params})


def load_items(plan: RefinePlan, columns: list[str] | None = None, holdout: bool | None = None) -> list[dict]:
    """The plan's item rows (``index`` order); ``holdout`` True / False: only the held-out / training ones."""
    filters = [("holdout", "=", holdout)] if holdout is not None else None
    return pq.read_table(plan.path("items.parquet"), columns=columns, filters=filters).to_pylist()


def refine_items(plan: RefinePlan, holdout: bool | None = None) -> list[RefineItem]:
    """The plan's images; ``holdout`` True / False: only the held-out / training ones."""
    rows = load_items(plan, ["index", "image_id", "path", "second_path", "holdout"])
    return [RefineItem(r["index"], r["image_id"], r["path"], r["second_path"])
            for r in rows if holdout is None or r["holdout"] == holdout]
