"""The labelling flow end to end on generated images with the tiny models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from engine.catalog import Workdir


def _rows(workdir):
    with duckdb.connect(str(Workdir.at(workdir).catalog_path), read_only=True) as con:
        return con.execute(
            "SELECT run_id, image_id, status, error, caption, phrase, box_count, mask_area_frac FROM label_quality "
            "ORDER BY run_id, image_id"
        ).fetchall()


@pytest.mark.slow
def test_flow_labels_every_image_once_and_resumes(prefect_harness, sample_set, tmp_path):
    from flows.build_pseudo_labels import build_pseudo_labels

    workdir = tmp_path / "wd"
    first = build_pseudo_labels(images=str(sample_set), workdir=str(workdir), shard_size=5, params_file=None)
    assert first["images"] == 12 and first["shards"] == 3 and first["shards_skipped"] == 0
    assert first["ok"] + first["no_object"] + first["error"] == 12
    rows = _rows(workdir)
    assert len(rows) == 12 and len({r[1] for r in rows}) == 12
    for _run, _id, status, error, caption, _phrase, box_count, area in rows:
        assert status in ("ok", "no_object")
        assert caption  # every decodable image got a caption
        if status == "ok":
            assert box_count >= 1 and 0 < area <= 1 and error is None
        else:
            assert error  # no_object always says why

    sheet = workdir / "reports" / f"run={first['run_id']}" / ("highest_quality.png" if first["ok"] else "not_ok.png")
    assert sheet.is_file() and sheet.stat().st_size > 1000  # contact sheet rendered for people

    again = build_pseudo_labels(images=str(sample_set), workdir=str(workdir), shard_size=5, params_file=None)
    assert again["run_id"] == first["run_id"] and again["shards_skipped"] == 3
    assert _rows(workdir) == rows  # nothing redone, no image twice
    assert again["captioner"].startswith("tiny (the profile's captioner")  # every summary names the captioner

    # A no-op rerun from the command line finishes without Prefect: an unreachable API does not matter.
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    noop = subprocess.run([str(Path(sys.executable).with_name("sodforge")), "label", str(sample_set), "--workdir",
                           str(workdir), "--shard-size", "5"], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert noop.returncode == 0 and "nothing to label" in noop.stdout, noop.stdout + noop.stderr
    assert _rows(workdir) == rows
    with duckdb.connect(str(Workdir.at(workdir).catalog_path), read_only=True) as con:
        assert con.execute("SELECT state, attempts, images FROM runs").fetchall() == [("completed", 3, 12)]

    changed = build_pseudo_labels(
        images=str(sample_set), workdir=str(workdir), shard_size=5, params_file=None,
        overrides={"label": {"box_threshold": 0.9}},
    )
    assert changed["run_id"] != first["run_id"] and changed["shards_skipped"] == 0
    with duckdb.connect(str(Workdir.at(workdir).catalog_path), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT run_id) FROM label_quality").fetchone() == (24, 2)
        assert con.execute("SELECT count(*) FROM runs WHERE state = 'completed'").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM images").fetchone() == (12,)


def test_flow_rejects_missing_images_folder(tmp_path):
    from flows.build_pseudo_labels import resolve_params

    assert resolve_params(None, "tiny", 7, None).ingest.shard_size == 7
    with pytest.raises(ValueError, match="unknown model profile"):
        resolve_params(None, "nope", None, None).models.specs()
