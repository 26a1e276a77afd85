"""The parent flow: labelling -> refinement -> training -> evaluation, as subflows."""

from __future__ import annotations

import json

import pytest

PARAMS = """
ingest: {shard_size: 6}
train: {epochs: 2, size_hw: [64, 64], batch_size: 4, val_fraction: 0.34}
refine: {size: 32, batch_size: 4, sce: {epochs: 1}, detector: {epochs: 2}, spr: {start_epoch: 1}}
evaluate: {worst: 2}
"""


@pytest.mark.slow
def test_data_engine_runs_the_chain_and_scores_every_version(prefect_harness, sample_set, tmp_path):
    from flows.data_engine import data_engine

    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    workdir = tmp_path / "wd"
    summary = data_engine(images=str(sample_set), workdir=str(workdir), params_file=str(params))
    assert summary["images"] == 12 and summary["refined_run"].startswith("refine-")
    # 12 images leave too few held out to check the refinement: the model trains on the pseudo-labels, and says so
    assert summary["refine_decision"] == "kept_source" and summary["trained_on_version"] == "pseudo"
    assert summary["trained_on"].endswith(f"labels/run={summary['labelling_run']}")
    assert "did not verify its labels" in summary["trained_on_reason"]
    for name in ("model_vs_truth", "labels_vs_truth", "refined_vs_truth"):
        assert 0.0 <= summary[f"{name}_MAE"] <= 1.0
    reports = workdir / "reports" / "data-engine"
    model = json.loads((reports / "model" / "metrics.json").read_text())
    assert set(model["heldout"]) >= {"MAE", "Smeasure", "wFmeasure", "maxFm", "meanEm", "images"}
    assert 0 < model["heldout"]["images"] < 12  # only the held-out split is scored ...
    details = json.loads((reports / "model" / "report" / "details.json").read_text())["datasets"]["heldout"]
    assert details["skipped"] == []  # ... against its own truth: no "skipped: no prediction" for training images
    assert (workdir / "models" / "sod" / "model.pt").is_file()


def test_truth_training_needs_masks(tmp_path):
    from flows.data_engine import _truth_masks

    assert _truth_masks(str(tmp_path), None) is None
    (tmp_path / "masks").mkdir()
    assert _truth_masks(str(tmp_path), None) == tmp_path / "masks"
    with pytest.raises(ValueError, match="truth mask folder not found"):
        _truth_masks(str(tmp_path), str(tmp_path / "nope"))


@pytest.mark.parametrize(
    ("train_on", "refined", "version", "says"),
    [
        ("refined", {"run_id": "refine-a", "labels_verified": True, "decision": "refined", "reason": "checked"},
         "refined", "verified its labels: checked"),
        ("refined", {"run_id": "refine-a", "labels_verified": False, "decision": "kept_source", "reason": "no repair"},
         "pseudo", "did not verify its labels (kept_source): no repair"),
        ("refined", {"run_id": "refine-a", "labels_verified": False, "decision": "unverified", "reason": "gate off"},
         "pseudo", "(unverified): gate off"),
        ("refined", None, "pseudo", "refinement was not run"),
        ("pseudo", {"run_id": "refine-a", "labels_verified": True, "decision": "refined", "reason": "x"},
         "pseudo", "train_on='pseudo'"),
    ],
)
def test_refined_labels_are_trained_on_only_when_verified(train_on, refined, version, says):
    from flows.data_engine import training_labels

    chosen, why = training_labels(train_on, refined)
    assert chosen == version and says in why
