"""``sodforge refine --labels DIR --out DIR`` as a user runs it: any label-shard folder in, a new version out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.storage import read_table

BIN = Path(sys.executable).parent
PARAMS = """
refine:
  backbone: tiny
  size: 32
  batch_size: 4
  device: cpu
  threads: 1
  sce: {epochs: 1}
  detector: {epochs: 2}
  spr: {start_epoch: 1}
  gate: {holdout_fraction: 0.34, holdout_min: 2}
"""


def _run(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "sodforge"), *args], env=env, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"sodforge {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def cli_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    env["COLUMNS"] = "200"
    return env


@pytest.mark.slow
def test_import_masks_then_refine_the_label_folder(sample_set, tmp_path, cli_env):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    labels, out = tmp_path / "imported", tmp_path / "refined"
    _run("import-masks", str(sample_set), "--out", str(labels), "--shard-size", "5", env=cli_env)
    result = _run("refine", "--labels", str(labels), "--out", str(out), "--params", str(params),
                  "--json", str(tmp_path / "summary.json"), env={**cli_env, "PREFECT_LOGGING_LEVEL": "INFO"})
    summary = json.loads((tmp_path / "summary.json").read_text())
    # two epochs of a tiny random detector learn nothing: the check keeps the (true) source masks, and says so
    assert summary["decision"] == "kept_source" and not summary["labels_verified"]
    assert "SOURCE LABELS KEPT" in result.stdout and summary["reason"][:40] in " ".join(result.stdout.split())
    said = " ".join((result.stdout + result.stderr).split())
    assert f"refine settings from {params}: backbone tiny (random init), 32 px" in said
    source_dir = next(labels.glob("run=*"))
    assert summary["source_dir"] == str(source_dir) and summary["source_run"] == source_dir.name.removeprefix("run=")
    written = sorted(Path(summary["labels_dir"]).glob("shard-*.parquet"))
    assert Path(summary["labels_dir"]).parent == out and len(written) == 3
    assert (out / "refine" / summary["run_id"] / "gate.json").is_file()
    source = {r["image_id"]: r["mask_rle"] for p in source_dir.glob("*.parquet") for r in read_table(p).to_pylist()}
    rows = [r for p in written for r in read_table(p).to_pylist()]
    assert len(rows) == 12 and all(r["mask_rle"] == source[r["image_id"]] for r in rows)
    # the refined folder is itself a label folder: it can be refined again (or trained on, evaluated)
    from engine.refine.plan import find_label_folder

    assert find_label_folder(out) == (summary["run_id"], Path(summary["labels_dir"]))


def test_refine_label_folder_errors_are_clear(tmp_path, cli_env):
    result = _run("refine", "--labels", str(tmp_path), env=cli_env, check=False)
    assert result.returncode == 2 and "--labels and --out go together" in result.stderr
    result = _run("refine", "--labels", str(tmp_path / "none"), "--out", str(tmp_path / "o"), env=cli_env, check=False)
    assert result.returncode == 2 and "label folder not found" in result.stderr
    for name in ("run=a", "run=b"):
        (tmp_path / "two" / name).mkdir(parents=True)
        (tmp_path / "two" / name / "shard-00000.parquet").write_bytes(b"not parquet")
    result = _run("refine", "--labels", str(tmp_path / "two"), "--out", str(tmp_path / "o"), env=cli_env, check=False)
    assert result.returncode == 2 and "several label runs (run=a, run=b); name one with --run" in result.stderr


def test_label_folder_planning_names_the_bad_file(tmp_path):
    from engine.refine.params import RefineParams
    from engine.refine.plan import plan_label_folder_run

    (tmp_path / "labels" / "run=a").mkdir(parents=True)
    (tmp_path / "labels" / "run=a" / "shard-00000.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"shard-00000.parquet: not a readable label shard"):
        plan_label_folder_run(tmp_path / "labels", tmp_path / "out", RefineParams())
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"path": ["x.jpg"], "height": [4]}), tmp_path / "labels" / "run=a" / "shard-00000.parquet")
    with pytest.raises(ValueError, match=r"missing columns \['mask_rle', 'width'\]"):
        plan_label_folder_run(tmp_path / "labels", tmp_path / "out", RefineParams())
    with pytest.raises(ValueError, match="must not be inside the source label folder"):
        plan_label_folder_run(tmp_path / "labels", tmp_path / "labels" / "run=a" / "out", RefineParams())


def test_settings_line_warns_about_a_large_random_backbone(tmp_path):
    from engine.refine.params import RefineParams
    from flows.refine_labels import describe_settings

    defaults = describe_settings(RefineParams(), None)  # outside a project: the paper's settings
    assert defaults[0].startswith("refine settings from built-in defaults (no params.yaml): backbone resnet50 (random init), 320 px")
    assert "no checkpoint (random weights)" in defaults[1] and "--backbone tiny" in defaults[1]
    assert len(describe_settings(RefineParams(backbone="tiny"), str(tmp_path / "missing.yaml"))) == 1
    assert len(describe_settings(RefineParams(checkpoint="moco.pth.tar"), None)) == 1
