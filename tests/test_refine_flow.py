"""The ``refine-labels`` and ``transfer`` flows end to end on a few generated images (via ``flow.fn``).

The source labelling run is faked from the true masks with documented corruptions (fakes only in
tests); everything after it (planning, both training stages, the held-out gate, shard writing,
catalog) is real. A tiny detector trained for two epochs learns nothing, so its gate must keep the
source labels; ``test_refine_gate_allows_a_detector_that_knows_the_objects`` swaps in a detector
that does (a fake, in tests only) and checks that the gate lets its refinements through.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
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
        "sce": {"epochs": 1}, "detector": {"epochs": 2}, "spr": {"start_epoch": 1}, "adapter": {"epochs": 1},
        "gate": {"holdout_fraction": 0.34, "holdout_min": 2}}


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
        had_mask = source[row["image_id"]]["mask_rle"] is not None
        assert (row["cue_agreement"] is not None) == had_mask  # IoU with the SAM mask, when there is one
        assert (row["refine_change"] is not None) == had_mask and 0.0 <= (row["refine_change"] or 0.0) <= 1.0
        if row["status"] == "ok":
            mask = decode_rle(row["mask_rle"], (row["height"], row["width"]))
            assert row["mask_area_frac"] == pytest.approx(mask.mean(), abs=1e-6)
            assert 0.001 <= mask.mean() <= 0.95  # never an empty or whole-image mask with status ok
        assert row["caption"] == "a shape"  # the source record's other columns are carried over


def test_a_detector_that_learned_nothing_keeps_the_source_labels(refined):
    """Two epochs of a tiny random detector: the held-out check fails, every label keeps its source."""
    wd, summary, source_bytes = refined
    assert summary["decision"] == "kept_source" and summary["labels_verified"] is False
    assert summary["reason"].startswith("source labels kept: ") and summary["probe"]["images"] >= 2
    source = {r["image_id"]: r for p in source_bytes for r in read_table(p).to_pylist()}
    without_mask = sum(r["mask_rle"] is None for r in source.values())  # the fake run's no_object rows
    assert summary["actions"] == {"kept_source": 12 - without_mask, "copied": without_mask} and without_mask == 2
    assert summary["mean_refine_change"] == 0.0
    gate = json.loads((Path(summary["run_dir"]) / "gate.json").read_text())
    assert gate["passed"] is False and gate["probe"] == summary["probe"] and not gate["pretrained_backbone"]
    for shard in Path(summary["labels_dir"]).glob("shard-*.parquet"):
        for row in read_table(shard).to_pylist():
            src = source[row["image_id"]]
            assert (row["mask_rle"], row["status"]) == (src["mask_rle"], src["status"])
            assert row["refine_reason"] == ("source has no mask: nothing to refine" if src["mask_rle"] is None
                                            else "refinement run did not pass its check: " + summary["reason"])


def test_refine_flow_records_the_run_and_catalogs_it(refined):
    wd, summary, _ = refined
    run_dir = Path(summary["run_dir"])
    for name in ("plan.json", "params.yaml", "sce.pt", "detector.pt", "cues.u8", "labels-init.u8", "labels.u8", "labels-final.u8",
                 "gate.json", "summary.json"):
        assert (run_dir / name).is_file(), name
    with duckdb.connect(summary["catalog"], read_only=True) as con:
        flows = dict(con.execute("SELECT run_id, flow FROM runs").fetchall())
        assert flows[summary["run_id"]] == "refine-labels"
        actions = dict(con.execute("SELECT refine_action, count(*) FROM label_quality WHERE run_id = ? GROUP BY 1",
                                   [summary["run_id"]]).fetchall())
        assert actions == summary["actions"]
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
                               overrides={**TINY, "spr": {"weights": [0.1, 0.7, 0.2], "start_epoch": 1},
                                          "gate": {"enabled": False}})
    assert changed["run_id"] != summary["run_id"]  # new parameters, new version beside the old one
    assert len(list((wd.data / "labels_refined").glob("run=*"))) == 2
    # without the check, refined labels are written but never passed off as verified
    from flows.refine_labels import decision_message

    assert changed["decision"] == "unverified" and changed["labels_verified"] is False and changed["probe"] is None
    assert "WITHOUT a check" in decision_message(changed)
    rows = [r for p in Path(changed["labels_dir"]).glob("*.parquet") for r in read_table(p).to_pylist()]
    assert {r["refine_action"] for r in rows} <= {"refined", "unchanged", "kept_source", "copied"}
    for row in rows:
        if row["status"] == "ok":
            assert 0.001 <= decode_rle(row["mask_rle"], (row["height"], row["width"])).mean() <= 0.95


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


class BrightnessDetector(torch.nn.Module):
    """A detector that knows the objects of :func:`_bright_scenes` (bright on dark): a fake, in tests only.

    It has the two-stream detector's interface; its one parameter gets zero gradient, so "training"
    leaves it as it is while SPR rewrites the labels toward its predictions.
    """

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images: torch.Tensor, second: torch.Tensor | None = None) -> torch.Tensor:
        return 12.0 * (images.mean(dim=1, keepdim=True) - 0.5) + 0.0 * self.unused

    def encoder_parameters(self) -> list[torch.nn.Parameter]:
        return []


def _bright_scenes(root: Path, count: int) -> tuple[Path, Path]:
    """``count`` 72 x 96 PNG photos (textured dark background, one bright ellipse) and their masks."""
    rng = np.random.default_rng(5)
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    ys, xs = np.mgrid[0:72, 0:96]
    for i in range(count):
        cy, cx, ry, rx = rng.uniform(26, 46), rng.uniform(34, 62), rng.uniform(12, 20), rng.uniform(14, 26)
        truth = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 < 1
        image = rng.integers(15, 80, (72, 96, 3)).astype(np.uint8)
        image[truth] = rng.integers(175, 235, 3)
        Image.fromarray(image).save(images / f"scene{i:02d}.png")
        Image.fromarray(truth.astype(np.uint8) * 255).save(masks / f"scene{i:02d}.png")
    return images, masks


def test_refine_gate_allows_a_detector_that_knows_the_objects(tmp_path, monkeypatch):
    """Label folder in, label folder out (``sodforge refine --labels --out``), with a detector that
    knows the objects: the held-out check passes, box-shaped labels of training images are repaired
    at full resolution, right labels stay bit for bit."""
    from engine.images import file_content_id
    from engine.refine import stages
    from engine.refine.gate import holdout_ids
    from engine.sod.gt_import import import_mask_folder
    from flows.refine_labels import refine_labels

    images, masks = _bright_scenes(tmp_path / "set", 24)
    params = {**TINY, "detector": {"epochs": 3}, "spr": {"start_epoch": 1},
              "gate": {"holdout_fraction": 0.34, "holdout_min": 4}}
    held = holdout_ids([file_content_id(p) for p in sorted(images.glob("*.png"))], 0.34, seed=0, cap=500)
    noisy = tmp_path / "noisy-masks"
    noisy.mkdir()
    truths, boxed = {}, set()
    for i, path in enumerate(sorted(masks.glob("*.png"))):
        truth = np.asarray(Image.open(path)) > 127
        truths[path.stem] = truth
        label = truth
        if file_content_id(images / path.name) not in held and i % 2 == 0:  # half of the training labels
            label, _ = corrupt_mask(truth, np.random.default_rng(i), kind="box")
            boxed.add(path.stem)
        Image.fromarray(label.astype(np.uint8) * 255).save(noisy / path.name)
    source = import_mask_folder(images, tmp_path / "labels", noisy, shard_size=10)
    monkeypatch.setattr(stages, "build_detector", lambda backbone, checkpoint=None: BrightnessDetector())
    summary = refine_labels.fn(labels=str(tmp_path / "labels"), out=str(tmp_path / "refined"), params_file=None,
                               overrides=params)

    assert summary["decision"] == "refined" and summary["labels_verified"] is True, summary["reason"]
    assert summary["probe"]["repair"] >= 0.3 and summary["probe"]["clean_drift"] <= 0.003
    assert summary["source_run"] == source.run_id and Path(summary["labels_dir"]).parent == tmp_path / "refined"
    assert summary["labels_dir"].endswith(f"run={summary['run_id']}") and "catalog" not in summary
    rows = {Path(r["path"]).stem: r for p in Path(summary["labels_dir"]).glob("shard-*.parquet")
            for r in read_table(p).to_pylist()}
    assert len(rows) == 24 and {r["source_run"] for r in rows.values()} == {source.run_id}
    before = after = 0.0
    for stem, row in rows.items():
        written = decode_rle(row["mask_rle"], (row["height"], row["width"]))
        if stem in boxed:
            assert row["refine_action"] == "refined" and row["refine_change"] > 0.02
        else:
            assert row["refine_action"] == "unchanged" and np.array_equal(written, truths[stem])
        label = np.asarray(Image.open(noisy / f"{stem}.png")) > 127
        before += np.mean(label != truths[stem]) / len(rows)
        after += np.mean(written != truths[stem]) / len(rows)
    assert after < 0.25 * before  # the box-shaped labels came back to their objects (MAE 0.023 -> 0.002)
