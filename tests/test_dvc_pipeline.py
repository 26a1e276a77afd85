"""The DVC pipeline's contract: experiments touch only the values they set, metrics are small
numbers under git, label runs persist, and nothing clone-specific is a tracked output."""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sodforge.commands.dvc import pick

ROOT = Path(__file__).parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _entries(stage: dict, kind: str) -> dict[str, dict]:
    """``{path: options}`` of a stage's outs / metrics / plots."""
    found = {}
    for entry in stage.get(kind, []):
        path, options = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        found[path] = options or {}
    return found


@pytest.mark.parametrize(
    ("override", "diff"),
    [
        ("label.box_threshold=0.35", ["-  box_threshold: 0.3", "+  box_threshold: 0.35"]),
        ("train.size_hw=[64,96]", ["+  - 64", "-  - 128"]),  # [96, 128] -> [64, 96]: difflib keeps the 96
        ("refine.source_run=abc", ["-  source_run:             # labelling run to refine (empty: the last completed "
                                   "build-pseudo-labels run)", "+  source_run: abc         # labelling run to refine "
                                   "(empty: the last completed build-pseudo-labels run)"]),
    ],
)
def test_dvc_exp_set_param_rewrites_only_the_value_it_sets(tmp_path, override, diff):
    """DVC rewrites params.yaml through ruamel (`dvc exp run --set-param`); ours is in its layout,
    so comments, blank lines and list layout survive and the diff is the value alone."""
    from dvc.utils.hydra import apply_overrides

    target = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", target)
    apply_overrides(target, [override])
    changed = [line for line in difflib.unified_diff((ROOT / "params.yaml").read_text().splitlines(),
                                                     target.read_text().splitlines(), n=0, lineterm="")
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == diff


def test_label_runs_refined_runs_and_the_captioner_persist():
    persisted = {path for stage in STAGES.values() for path, o in _entries(stage, "outs").items() if o.get("persist")}
    assert {"data/catalog/labels", "data/catalog/images", "data/catalog/labels_refined",
            "data/models/captioner"} <= persisted


def test_nothing_clone_specific_is_a_tracked_output():
    tracked = {path for stage in STAGES.values() for kind in ("outs", "metrics", "plots")
               for path in _entries(stage, kind)}
    for local in ("data/catalog.duckdb", "data/catalog/compact", "data/catalog/runs", "data/refine", "data/export",
                  "models/captioner", "data/models/sod/history.json", "data/models/sod/metrics.json",
                  "data/models/sod/checkpoints"):
        assert local not in tracked, local
    label_stage = STAGES["build-pseudo-labels"]
    assert "--captioner data/models/captioner" in label_stage["cmd"]  # named, never picked up from ./models


def test_metrics_are_small_numbers_only_files_under_git():
    metrics = {path: o for stage in STAGES.values() for path, o in _entries(stage, "metrics").items()}
    assert metrics and all(path.startswith("metrics/") and o.get("cache") is False for path, o in metrics.items())
    ignored = subprocess.run(["git", "check-ignore", *metrics], cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout == "", f"metrics files must not be git-ignored: {ignored.stdout}"
    for path in metrics:
        if (ROOT / path).is_file():  # committed with dvc.lock
            values = json.loads((ROOT / path).read_text())
            assert 0 < len(values) <= 6 and all(isinstance(v, (int, float)) for v in values.values()), path
    columns = {k for path in metrics if (ROOT / path).is_file() for k in json.loads((ROOT / path).read_text())}
    assert len(columns) <= 16  # `dvc metrics show` stays a narrow table


def test_pick_keeps_named_numbers_and_refuses_ambiguous_or_missing_keys():
    report = {"sample": {"MAE": 0.123456, "images": 48, "path": "/x"}, "after": {"f1": 0.5}, "before": {"f1": 0.1}}
    assert pick(report, ["MAE", "images", "after.f1=f1"]) == {"MAE": 0.1235, "images": 48, "f1": 0.5}
    with pytest.raises(ValueError, match="exactly one"):
        pick(report, ["f1"])
    with pytest.raises(ValueError, match="matches: none"):
        pick(report, ["path"])  # strings are never metrics


def test_dvc_metrics_and_table_commands(tmp_path):
    from sodforge.cli import app

    (tmp_path / "report.json").write_text(json.dumps({"heldout": {"MAE": 0.25, "Smeasure": 0.5, "note": "x"}}))
    (tmp_path / "history.json").write_text(json.dumps([{"epoch": 1, "val_mae": 0.3333333, "seconds": 9.1},
                                                       {"epoch": 2, "val_mae": 0.25, "seconds": 8.7}]))
    runner = CliRunner()
    done = runner.invoke(app, ["dvc", "metrics", str(tmp_path / "report.json"), str(tmp_path / "m" / "model.json"),
                               "-k", "MAE", "-k", "Smeasure"])
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "m" / "model.json").read_text()) == {"MAE": 0.25, "Smeasure": 0.5}
    pngs = []
    for name in ("a.png", "b.png"):
        done = runner.invoke(app, ["dvc", "table", str(tmp_path / "history.json"), str(tmp_path / "h.csv"),
                                   "-c", "epoch", "-c", "val_mae", "--png", str(tmp_path / name)])
        assert done.exit_code == 0, done.output
        pngs.append((tmp_path / name).read_bytes())
    assert (tmp_path / "h.csv").read_text() == "epoch,val_mae\n1,0.33333\n2,0.25\n"  # no timings
    assert pngs[0][:8] == b"\x89PNG\r\n\x1a\n" and pngs[0] == pngs[1]  # an offline plot, same bytes every run
    failed = runner.invoke(app, ["dvc", "metrics", str(tmp_path / "report.json"), str(tmp_path / "x.json"), "-k", "MAX"])
    assert failed.exit_code == 2 and "MAX" in failed.output
    missing = tmp_path / "nope.json"
    for command in (["metrics", str(missing), str(tmp_path / "x.json"), "-k", "MAE"],
                    ["table", str(missing), str(tmp_path / "x.csv"), "-c", "epoch"]):
        failed = runner.invoke(app, ["dvc", *command])
        assert failed.exit_code == 2, failed.output  # an error line (a raised exception exits 1)
        assert " ".join(failed.output.split()).count(f"{missing}: cannot read JSON") == 1  # named once, no traceback
