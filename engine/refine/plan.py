"""Planning a refinement run over a workdir: which labelling run, which images, where outputs go.

Layout (all under the workdir ``DIR``)::

    DIR/catalog/labels/run=<source>/shard-*.parquet            source labels (build-pseudo-labels)
    DIR/catalog/labels_refined/run=refine-<id>/shard-*.parquet refined labels (a NEW version)
    DIR/refine/refine-<id>/                                    plan.json, items.parquet, checkpoints
                                                               (sce.pt, detector.pt), label banks
                                                               (*.u8), history.json, summary.json

The run id hashes the source shards' fingerprints and the parameters that change labels, so the
same inputs resume the same run and any change makes a new version; the source is never touched.
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
from engine.images.paths import resolve_stored
from engine.params import as_dict, load_section
from engine.refine.data import RefineItem
from engine.refine.params import RefineParams
from engine.storage import fingerprint, read_fingerprint, read_table, write_table_atomic

REFINED_LABELS_DIR = "labels_refined"
LABELLING_FLOW = "build-pseudo-labels"
ITEM_SCHEMA = pa.schema([("index", pa.int64()), ("image_id", pa.string()), ("path", pa.string()),
                         ("second_path", pa.string()), ("shard", pa.string()), ("mask_rle", pa.string()),
                         ("height", pa.int32()), ("width", pa.int32())])


def refined_labels_root(workdir: Workdir) -> Path:
    return workdir.data / REFINED_LABELS_DIR


def refined_labels_dir(workdir: Workdir, run_id: str) -> Path:
    return refined_labels_root(workdir) / f"run={run_id}"


def refine_run_dir(workdir: Workdir, run_id: str) -> Path:
    return workdir.root / "refine" / run_id


@dataclass(frozen=True)
class RefinePlan:
    """A planned run; saved as ``run_dir/plan.json`` so tasks pass only ``run_dir``."""

    run_id: str
    source_run: str
    workdir: str
    run_dir: str
    source_shards: tuple[str, ...]
    count: int
    params: RefineParams

    @property
    def out_dir(self) -> Path:
        return refined_labels_dir(Workdir.at(self.workdir), self.run_id)

    def out_path(self, source_shard: str | Path) -> Path:
        return self.out_dir / Path(source_shard).name

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


def result_params(params: RefineParams) -> dict:
    """The parameters that change refined labels (performance knobs excluded)."""
    return {k: v for k, v in as_dict(params).items() if k not in RefineParams.PERFORMANCE_KEYS}


def _second_path(manifest_row: dict | None, choice: str) -> str | None:
    if manifest_row is None or choice == "rgb":
        return None
    names = ("depth", "thermal", "flow") if choice == "auto" else (choice,)
    return next((manifest_row.get(f"{n}_path") for n in names if manifest_row.get(f"{n}_path")), None)


def _item_rows(workdir: Workdir, shards: list[Path], second: str) -> list[dict]:
    rows = []
    for shard in shards:
        manifest_path = workdir.manifest_dir / shard.name
        manifest = {r["image_id"]: r for r in read_table(manifest_path).to_pylist()} if manifest_path.is_file() else {}
        columns = ["image_id", "path", "status", "mask_rle", "height", "width"]
        for row in read_table(shard).select(columns).to_pylist():
            if row["status"] == "error" or row["height"] is None:
                continue  # unreadable images are copied through with their error
            rows.append({"index": len(rows), "image_id": row["image_id"], "path": resolve_stored(row["path"], workdir.root),
                         "second_path": resolve_stored(_second_path(manifest.get(row["image_id"]), second), workdir.root),
                         "shard": shard.stem,
                         "mask_rle": row["mask_rle"], "height": row["height"], "width": row["width"]})
    return rows


def plan_refine_run(workdir: str | Path, params: RefineParams) -> RefinePlan:
    """Pick the source run, list its trainable images and write ``plan.json`` + ``items.parquet``."""
    wd = Workdir.at(workdir)
    source = find_source_run(wd, params.source_run)
    shards = sorted(wd.labels_dir(source).glob("shard-*.parquet"))
    run_id = "refine-" + fingerprint(source, [read_fingerprint(s) for s in shards], result_params(params), length=6)
    run_dir = refine_run_dir(wd, run_id)
    rows = _item_rows(wd, shards, params.detector.second_stream)
    if not rows:
        raise ValueError(f"{wd.labels_dir(source)}: no readable images to refine")
    plan = RefinePlan(run_id, source, str(wd.root), str(run_dir), tuple(str(s) for s in shards), len(rows), params)
    write_table_atomic(pa.Table.from_pylist(rows, schema=ITEM_SCHEMA), run_dir / "items.parquet")
    fields = {k: v for k, v in dataclasses.asdict(plan).items() if k != "params"}
    (run_dir / "plan.json").write_text(json.dumps(fields, indent=1))
    (run_dir / "params.yaml").write_text(yaml.safe_dump({"refine": json.loads(json.dumps(as_dict(params)))}))
    return plan


def load_plan(run_dir: str | Path) -> RefinePlan:
    """Read ``run_dir/plan.json`` and the resolved ``params.yaml`` back (parameters validated again)."""
    path = Path(run_dir) / "plan.json"
    if not path.is_file():
        raise ValueError(f"{path}: no refinement plan here; plan the run first")
    data = json.loads(path.read_text())
    params = load_section(Path(run_dir) / "params.yaml", "refine", RefineParams)
    return RefinePlan(**{**data, "source_shards": tuple(data["source_shards"]), "params": params})


def load_items(plan: RefinePlan, columns: list[str] | None = None) -> list[dict]:
    """The plan's item rows (``index`` order)."""
    return pq.read_table(plan.path("items.parquet"), columns=columns).to_pylist()


def refine_items(plan: RefinePlan) -> list[RefineItem]:
    return [RefineItem(r["index"], r["image_id"], r["path"], r["second_path"])
            for r in load_items(plan, ["index", "image_id", "path", "second_path"])]
