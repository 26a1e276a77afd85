"""The ``refine-labels`` and ``transfer`` flows end to end on a few generated images (via ``flow.fn``).

The source labelling run is faked from the true masks with documented corruptions (fakes only in
tests); everything after it (planning, both training stages, shard writing, catalog) is real.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from PIL import Image

from engine.catalog import RunRecord, Workdir
from engine.images.manifest import ingest
from engine.labeling.record import PseudoLabel, labels_to_table
from engine.masks import decode_rle, encode_rle
from engine.refine.corruptions import corrupt_mask
from engine.refine.plan import find_source_run
from engine.storage import fingerprint, read_table, write_table_atomic

SOURCE_RUN = "fake01"
TINY = {"backbone": "tiny", "size": 32, "batch_size": 4, "num_workers": 0, "device": "cpu",
        "sce": {"epochs": 1}, "detector": {"epochs": 2}, "spr": {"start_epoch": 1}, "adapter": {"epochs": 1}}


def _label(row: dict, shard: str, mask: np.ndarray | None) -> PseudoLabel:
    if mask is None:
        return PseudoLabel(row["image_id"], row["path"], SOURCE_RUN, shard, "no_object", height=row["height"],
                           width=row["width"], caption="a shape", mask_area_frac=0.0)
    return PseudoLabel(row["image_id"], row["path"], SOURCE_RUN, shard, "ok", height=row["height"], width=row["width"],
                       caption="a shape", phrase="shape", category="shape", mask_rle=encode_rle(mask),
                       best_box_score=0.9, box_count=1, sam_pred_iou=0.9, stability_score=0.9,
                       mask_area_frac=float(mask.mean()), components=1, boundary_smoothness=0.9, quality_score=0.9)


def _fake_labelled_workdir(sample_set: Path, root: Path) -> Workdir:
    """Ingest the sample set (shards of 6) and write a fake labelling run from corrupted true masks."""
    wd = Workdir.at(root)
    rng = np.random.default_rng(0)
    for manifest in ingest(str(sample_set), wd.manifest_dir, 6).shard_paths:
        labels = []
        for i, row in enumerate(read_table(manifest).to_pylist()):
            truth = np.asarray(Image.open(sample_set / "masks" / f"{Path(row['path']).stem}.png")) > 127
            labels.append(_label(row, manifest.stem, None if i == 0 else corrupt_mask(truth, rng, index=i)[0]))
        write_table_atomic(labels_to_table(labels), wd.labels_dir(SOURCE_RUN) / manifest.name,
                           fingerprint(manifest.name, "fake"))
    record = RunRecord(SOURCE_RUN, "build-pseudo-labels", {}, {})
    record.state = "completed"
    record.save(wd)
    return wd


@pytest.fixture(scope="module")
def refined(sample_set, tmp_path_factory):
    from flows.refine_labels import refine_labels

    wd = _fake_labelled_workdir(sample_set, tmp_path_factory.mktemp("refine-wd"))
    source_bytes = {p: p.read_bytes() for p in wd.labels_dir(SOURCE_RUN).glob("*.parquet")}
    summary = refine_labels.fn(workdir=str(wd.root), params_file=None, overrides=TINY)
    return wd, summary, source_bytes


def test_refine_flow_writes_a_new_labelled_version(refined):
    wd, summary, source_bytes = refined
    assert summary["run_id"].startswith("refine-") and summary["source_run"] == SOURCE_RUN
    assert summary["images"] == 12 and summary["ok"] + summary["no_object"] == 12
    assert all(p.read_bytes() == b for p, b in source_bytes.items())  # the source run is never touched
    out = sorted(Path(summary["labels_dir"]).glob("shard-*.parquet"))
    assert [p.name for p in out] == sorted(p.name for p in source_bytes)
    assert Path(summary["labels_dir"]).parent.name == "labels_refined"
    rows = [r for p in out for r in read_table(p).to_pylist()]
    source = {r["image_id"]: r for p in source_bytes for r in read_table(p).to_pylist()}
    assert {r["run_id"] for r in rows} == {summary["run_id"]} and {r["source_run"] for r in rows} == {SOURCE_RUN}
    for row in rows:
        assert 0.0 <= row["refine_change"] <= 1.0
        had_mask = source[row["image_id"]]["mask_rle"] is not None
        assert (row["cue_agreement"] is not None) == had_mask  # IoU with the SAM mask, when there is one
        if row["status"] == "ok":
            mask = decode_rle(row["mask_rle"], (row["height"], row["width"]))
            assert row["mask_area_frac"] == pytest.approx(mask.mean(), abs=1e-6)
        assert row["caption"] == "a shape"  # the source record's other columns are carried over


def test_refine_flow_records_the_run_and_catalogs_it(refined):
    wd, summary, _ = refined
    run_dir = Path(summary["run_dir"])
    for name in ("plan.json", "params.yaml", "sce.pt", "detector.pt", "cues.u8", "labels-init.u8", "labels.u8", "summary.json"):
        assert (run_dir / name).is_file(), name
    with duckdb.connect(summary["catalog"], read_only=True) as con:
        flows = dict(con.execute("SELECT run_id, flow FROM runs").fetchall())
        assert flows[summary["run_id"]] == "refine-labels"
    # a refine run is never picked as the source of the next one
    assert find_source_run(wd) == SOURCE_RUN


def test_refine_flow_rerun_resumes_without_rewriting(refined):
    from flows.refine_labels import refine_labels

    wd, summary, _ = refined
    shards = sorted(Path(summary["labels_dir"]).glob("*.parquet"))
    mtimes = [p.stat().st_mtime_ns for p in shards]
    again = refine_labels.fn(workdir=str(wd.root), params_file=None, overrides=TINY, build_catalog=False)
    assert again["run_id"] == summary["run_id"] and [p.stat().st_mtime_ns for p in shards] == mtimes
    changed = refine_labels.fn(workdir=str(wd.root), params_file=None, build_catalog=False,
                               overrides={**TINY, "spr": {"weights": [0.1, 0.7, 0.2], "start_epoch": 1}})
    assert changed["run_id"] != summary["run_id"]  # new parameters, new version beside the old one
    assert len(list((wd.data / "labels_refined").glob("run=*"))) == 2


def test_transfer_flow_trains_only_the_adapter(refined, sample_set, tmp_path):
    import torch

    from flows.transfer import transfer

    _, summary, _ = refined
    detector = Path(summary["run_dir"]) / "detector.pt"
    result = transfer.fn(detector=str(detector), target=str(sample_set), out_dir=str(tmp_path), params_file=None,
                         overrides=TINY)
    assert result["images"] == 12 and result["adapter_params"] > 0 and len(result["history"]) == 1
    assert result["mae_before"] is not None and result["mae_after"] is not None
    before = torch.load(detector, weights_only=True)["state_dict"]
    after = torch.load(result["adapted"], weights_only=True)["state_dict"]
    for key, value in before.items():
        assert torch.equal(after[key.replace("branches.2.", "branches.2.block.")], value), key
    with pytest.raises(ValueError, match="not found"):
        transfer.fn(detector=str(tmp_path / "none.pt"), target=str(sample_set), out_dir=str(tmp_path), params_file=None)
