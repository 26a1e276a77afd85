"""Fault injection: odd and broken files, kill -9 and resume, corrupted shards, Dask scale-out."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
from bad_files import flip_mid_page, huge_jpeg, png_bomb
from PIL import Image

from engine.catalog import Workdir
from engine.datasets import generate_sample_set

BIN = Path(sys.executable).parent


def _corpus(root: Path) -> dict[str, str | None]:
    """Odd-but-valid and broken files; value = expected error fragment (None: must be labelled)."""
    images = root / "images"
    generate_sample_set(root, count=3, size_hw=(64, 80), seed=5, with_depth=False)
    rng = np.random.default_rng(0)
    Image.new("CMYK", (50, 40), (0, 255, 255, 0)).save(images / "cmyk.jpg")
    Image.fromarray((rng.random((40, 50)) * 60000).astype(np.uint16)).save(images / "sixteen.png")
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).convert("P").save(images / "palette.png")
    Image.new("RGBA", (50, 40), (255, 0, 0, 128)).save(images / "alpha.png")
    Image.new("L", (50, 40), 90).save(images / "gray.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (60, 30), (0, 0, 255)).save(images / "rotated.jpg", exif=exif.tobytes())
    Image.new("RGB", (1200, 24), (200, 100, 0)).save(images / "wide.png")
    Image.new("RGB", (2400, 1800), (10, 120, 30)).save(images / "large.jpg")
    Image.new("RGB", (5, 5)).save(images / "tiny.png")
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(buffer, "PNG")
    (images / "truncated.png").write_bytes(buffer.getvalue()[:300])
    (images / "empty.jpg").write_bytes(b"")
    (images / "notes.jpg").write_text("this is not an image")
    png_bomb(images / "bomb.png")  # header claims 30000x30000: PIL's DecompressionBombError
    huge_jpeg(images / "panorama.jpg")  # header claims 14000x13000 = 182 Mpx
    expected = {p.name: None for p in images.iterdir()}
    expected.update({"tiny.png": "too small", "truncated.png": "truncated", "empty.jpg": "empty",
                     "notes.jpg": "not an image", "bomb.png": "too large", "panorama.jpg": "too large"})
    if Path("/proc/self/mem").exists():  # a real EIO: reading /proc/self/mem at offset 0 fails with errno 5
        os.symlink("/proc/self/mem", images / "bad_disk.jpg")
        expected["bad_disk.jpg"] = "cannot read file ([Errno 5] Input/output error)"
    return expected


def _odd_entries(images: Path) -> dict[str, str]:
    """Entries that are not images at all: no row, but listed as skipped, with the reason."""
    os.symlink("loop2.jpg", images / "loop1.jpg")
    os.symlink("loop1.jpg", images / "loop2.jpg")
    os.mkfifo(images / "pipe.jpg")
    (images / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42")
    (images / "photo.heic").write_bytes(b"\0\0\0\x18ftypheic")
    return {"loop1.jpg": "symlink loop", "loop2.jpg": "symlink loop", "pipe.jpg": "FIFO", "clip.mp4": "not an image",
            "photo.heic": "unsupported image format"}


def _label_rows(workdir: Path) -> list[tuple]:
    with duckdb.connect(str(Workdir.at(workdir).catalog_path), read_only=True) as con:
        return con.execute(
            "SELECT l.image_id, l.status, l.caption, m.mask_rle FROM label_quality l "
            "LEFT JOIN masks m USING (image_id, run_id) ORDER BY l.image_id"
        ).fetchall()


@pytest.mark.slow
def test_odd_and_broken_files_never_stop_a_run(prefect_harness, tmp_path):
    from flows.build_pseudo_labels import build_pseudo_labels

    expected = _corpus(tmp_path / "set")
    skipped = _odd_entries(tmp_path / "set" / "images")
    summary = build_pseudo_labels(images=str(tmp_path / "set"), workdir=str(tmp_path / "wd"), shard_size=4,
                                  params_file=None)
    assert summary["images"] == len(expected) and summary["skipped_files"] == len(skipped)
    report = (tmp_path / "wd" / "reports" / "ingest_skipped_files.tsv").read_text().splitlines()
    reasons = {Path(line.split("\t")[0]).name: line.split("\t")[1] for line in report}
    assert set(reasons) == set(skipped) and all(skipped[n] in reasons[n] for n in skipped), reasons
    with duckdb.connect(str(tmp_path / "wd" / "catalog.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT path, status, error, height, width FROM label_quality").fetchall()
    by_name = {Path(path).name: (status, error, h, w) for path, status, error, h, w in rows}
    by_name = {("bad_disk.jpg" if name == "mem" else name): value for name, value in by_name.items()}
    assert set(by_name) == set(expected)
    for name, fragment in expected.items():
        status, error, height, width = by_name[name]
        if fragment is None:
            assert status in ("ok", "no_object"), (name, error)
        else:
            assert status == "error" and name in error and fragment in error, (name, error)
    assert (by_name["rotated.jpg"][2], by_name["rotated.jpg"][3]) == (60, 30)  # EXIF orientation applied


def _cli_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-cli")
    return env


@pytest.mark.slow
def test_kill_9_then_rerun_resumes_without_redoing_or_duplicating(prefect_harness, tmp_path):
    from flows.build_pseudo_labels import build_pseudo_labels

    generate_sample_set(tmp_path / "set", count=40, size_hw=(96, 128), seed=11, with_depth=False)
    # same batch size as the killed run: batch composition may move a boundary mask pixel (float noise)
    reference = build_pseudo_labels(images=str(tmp_path / "set"), workdir=str(tmp_path / "ref"), shard_size=2,
                                    params_file=None, overrides={"label": {"batch_size": 1}})
    workdir = tmp_path / "wd"
    command = [str(BIN / "sodforge"), "label", str(tmp_path / "set"), "--workdir", str(workdir),
               "--shard-size", "2", "--batch-size", "1"]
    log = tmp_path / "killed-run.log"
    with open(log, "w") as out:  # cwd=tmp_path: no params.yaml there, same defaults as the reference run
        process = subprocess.Popen(command, env=_cli_env(tmp_path), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=tmp_path)
    labels_root = workdir / "catalog" / "labels"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not list(labels_root.rglob("shard-*.parquet")):
        assert process.poll() is None, f"label run ended before any shard:\n{log.read_text()}"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    done_before = {p.name: p.stat().st_mtime_ns for p in labels_root.rglob("shard-*.parquet")}
    assert 0 < len(done_before) < reference["shards"], "the kill should land mid-run"

    rerun = subprocess.run(command, env=_cli_env(tmp_path), capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    after = {p.name: p.stat().st_mtime_ns for p in labels_root.rglob("shard-*.parquet")}
    assert all(after[name] == mtime for name, mtime in done_before.items())  # finished shards not redone
    rows = _label_rows(workdir)
    assert len(rows) == 40 and len({r[0] for r in rows}) == 40  # no image twice
    assert rows == _label_rows(tmp_path / "ref")  # same statuses, captions and masks as an uninterrupted run


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.slow
@pytest.mark.parametrize("damage", [_truncate, lambda path: flip_mid_page(path, "mask_rle")], ids=["truncated", "mid-file"])
def test_corrupted_shard_is_detected_and_recomputed(prefect_harness, sample_set, tmp_path, damage):
    from engine.catalog import build_catalog
    from flows.build_pseudo_labels import build_pseudo_labels

    first = build_pseudo_labels(images=str(sample_set), workdir=str(tmp_path), shard_size=5, params_file=None)
    rows = _label_rows(tmp_path)
    victim = sorted((tmp_path / "catalog" / "labels").rglob("shard-*.parquet"))[1]
    damage(victim)  # a mid-file flip keeps the footer: the fingerprint alone would call it current
    build_catalog(tmp_path)  # the catalog leaves the damaged shard out instead of serving it or failing
    assert len(_label_rows(tmp_path)) == len(rows) - 5
    again = build_pseudo_labels(images=str(sample_set), workdir=str(tmp_path), shard_size=5, params_file=None)
    assert again["run_id"] == first["run_id"] and again["shards_skipped"] == first["shards"] - 1
    assert _label_rows(tmp_path) == rows


@pytest.mark.slow
def test_dask_task_runner_labels_on_a_local_cluster(prefect_harness, sample_set, tmp_path):
    from flows.build_pseudo_labels import build_pseudo_labels, task_runner

    flow = build_pseudo_labels.with_options(task_runner=task_runner(dask_workers=2))
    summary = flow(images=str(sample_set), workdir=str(tmp_path), shard_size=4, params_file=None)
    assert summary["images"] == 12 and summary["shards"] == 3
    assert len(_label_rows(tmp_path)) == 12


def test_task_runner_arguments():
    from flows.build_pseudo_labels import task_runner

    with pytest.raises(ValueError, match="not both"):
        task_runner(dask_workers=2, dask_address="tcp://127.0.0.1:8786")
    assert type(task_runner()).__name__ == "ThreadPoolTaskRunner"
