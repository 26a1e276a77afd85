"""Exports are atomic: a failed or killed export (even with --overwrite) never destroys an earlier one,
can simply be rerun, and the summary counts what the --where filter left out."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.catalog import RunRecord, Workdir, build_catalog
from engine.export import EXPORTERS, export_duts
from engine.labeling.record import PseudoLabel, labels_to_table
from engine.masks import encode_rle
from engine.storage import WriteError, write_table_atomic

BIN = Path(sys.executable).parent


def labelled_workdir(root: Path, count: int) -> Path:
    """``count`` 24x32 JPEGs labelled in run ``r``: every third ``no_object``, the rest ``ok``."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = []
    for i in range(count):
        path = root / "images" / f"im{i:04d}.jpg"
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
        mask = np.zeros((24, 32), bool)
        mask[2:20, i % 10 : i % 10 + 12] = True
        ok = i % 3 != 0
        labels.append(PseudoLabel(f"{i:032x}", str(path), "r", "shard-00000", "ok" if ok else "no_object",
                                  height=24, width=32, mask_rle=encode_rle(mask) if ok else None, quality_score=0.5))
    wd = Workdir.at(root / "work")
    write_table_atomic(labels_to_table(labels), wd.labels_dir("r") / "shard-00000.parquet")
    RunRecord("r", "build-pseudo-labels", {}, {}, state="completed").save(wd)
    build_catalog(wd)
    return wd.root


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return labelled_workdir(tmp_path_factory.mktemp("export-safety"), 9)


def _listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_summary_counts_rows_the_filter_removed(workdir, tmp_path):
    result = export_duts(workdir, tmp_path / "ok")
    assert (result.total, result.selected, result.exported, result.filtered_out) == (9, 6, 6, 3)
    assert result.summary() == (f"exported 6 of 9 labels of run r (3 filtered out by --where \"status = 'ok'\", "
                                f"0 unreadable) as duts to {tmp_path / 'ok'}")
    saved = json.loads((tmp_path / "ok" / "export.json").read_text())
    assert (saved["total"], saved["selected"], saved["filtered_out"]) == (9, 6, 3)


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_a_failed_overwrite_keeps_the_earlier_export(workdir, tmp_path, monkeypatch, fmt):
    import engine.export.common as common

    out = tmp_path / "out"
    EXPORTERS[fmt](workdir, out)
    before = _listing(out)
    calls = {"n": 0}
    real_write = Path.write_bytes

    def disk_fills_up(self, data):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_fills_up)
    monkeypatch.setattr(common.Path, "write_bytes", disk_fills_up)
    if fmt == "hf":  # hf writes Parquet files: fail those
        monkeypatch.setattr("engine.export.hf.write_table_atomic", lambda *a, **k: (_ for _ in ()).throw(
            WriteError(errno.ENOSPC, "No space left on device", str(out / "data" / "train-00000.parquet"))))
    with pytest.raises(WriteError, match="No space left on device"):  # a write error stops the export...
        EXPORTERS[fmt](workdir, out, where="true", overwrite=True)
    monkeypatch.undo()
    assert _listing(out) == before  # ...and the earlier export is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no partial folder left behind
    assert EXPORTERS[fmt](workdir, out, where="true", overwrite=True).exported == 9  # a rerun just works


def test_leftovers_of_killed_exports_are_cleaned_or_rolled_back(workdir, tmp_path):
    out = tmp_path / "out"
    export_duts(workdir, out)
    before = _listing(out)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a pid that is surely gone
    (tmp_path / f".out.partial-{dead}" / "Image").mkdir(parents=True)  # killed while writing
    export_duts(workdir, out, where="true", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and len(_listing(out)) > len(before)

    os.rename(out, tmp_path / f".out.old-{dead}")  # killed between setting the old export aside and the swap
    (tmp_path / f".out.partial-{dead}").mkdir()
    with pytest.raises(ValueError, match="folder is not empty"):  # the earlier export is back, so it is protected
        export_duts(workdir, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (out / "export.json").is_file()


@pytest.mark.slow
def test_export_killed_mid_way_keeps_the_earlier_one_and_reruns(tmp_path):
    """``sodforge export --overwrite`` killed with SIGKILL while writing: the earlier export survives whole,
    and the same command, run again, finishes (the partial folder left by the kill is removed)."""
    workdir = labelled_workdir(tmp_path / "set", 400)
    out = tmp_path / "exports" / "duts"
    export_duts(workdir, out, where="status = 'ok'")
    before = _listing(out)
    command = [str(BIN / "sodforge"), "export", "--workdir", str(workdir), "--format", "duts", "--out", str(out),
               "--where", "true", "--overwrite"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    partial = None
    while time.monotonic() < deadline and process.poll() is None:
        stages = list(out.parent.glob(".duts.partial-*"))
        if stages and len(list((stages[0] / "Mask").glob("*.png"))) >= 20:
            partial = stages[0]
            break
        time.sleep(0.005)
    assert partial is not None, f"export ended before it could be killed: {process.communicate()[0]}"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert _listing(out) == before  # the earlier export is whole
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "exported 400 of 400 labels of run r (0 filtered out by --where \"true\", 0 unreadable)" in rerun.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["duts"]  # the killed run's partial folder is gone
    assert len(list((out / "Mask").glob("*.png"))) == 400
