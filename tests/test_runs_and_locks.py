"""Run records survive interrupted reruns; one run per workdir (a lock naming its holder); a first
run's labels show up in the catalog as its shards land."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from engine.catalog import Workdir, build_catalog
from engine.catalog.compact import completed_runs
from engine.catalog.lock import LOCK_NAME, WorkdirBusyError, lock_holder, workdir_lock
from engine.catalog.runs import RunRecord, begin_attempt, load_record, recency
from engine.labeling.record import PseudoLabel, labels_to_table
from engine.storage import write_table_atomic

BIN = Path(sys.executable).parent


def _completed(wd: Workdir, run_id: str = "abc123") -> RunRecord:
    record = begin_attempt(wd, run_id, "build-pseudo-labels", {"captioner": "c"}, {"label": {}})
    record.complete({"ok": 7, "no_object": 2, "error": 1}, shards=3, shards_skipped=0, seconds=12.5)
    record.save(wd)
    return record


def test_a_rerun_that_dies_right_after_it_starts_keeps_the_finished_record(tmp_path):
    wd = Workdir.at(tmp_path)
    done = _completed(wd)
    begin_attempt(wd, "abc123", "build-pseudo-labels", {"captioner": "c"}, {"label": {}})  # ... then killed
    kept = load_record(wd, "abc123")
    assert (kept.state, kept.images, kept.ok, kept.no_object, kept.error) == ("completed", 10, 7, 2, 1)
    assert (kept.started_at, kept.finished_at, kept.seconds) == (done.started_at, done.finished_at, 12.5)
    assert kept.attempts == 2 and kept.last_attempt_at > done.finished_at
    with duckdb.connect(str(build_catalog(wd)), read_only=True) as con:  # the catalog still serves it as finished
        assert con.execute("SELECT state, images, attempts FROM runs").fetchall() == [("completed", 10, 2)]
    assert "abc123" not in completed_runs(wd)  # its shards may be changing: read live until it completes again
    again = begin_attempt(wd, "abc123", "build-pseudo-labels", {"captioner": "c"}, {"label": {}})
    again.complete({"ok": 7, "no_object": 2, "error": 1}, shards=3, shards_skipped=3, seconds=0.1)
    again.save(wd)
    assert "abc123" in completed_runs(wd)  # served from its compacted copy again


def test_an_attempt_on_an_unfinished_run_keeps_its_first_start_and_completing_adds_time(tmp_path):
    wd = Workdir.at(tmp_path)
    first = begin_attempt(wd, "r1", "build-pseudo-labels", {}, {})  # killed before finishing
    second = begin_attempt(wd, "r1", "build-pseudo-labels", {}, {})
    assert (second.state, second.started_at, second.attempts) == ("running", first.started_at, 2)
    second.complete({"ok": 4}, shards=1, shards_skipped=0, seconds=3.0)
    second.save(wd)
    third = begin_attempt(wd, "r1", "build-pseudo-labels", {}, {})
    third.complete({"ok": 4}, shards=1, shards_skipped=1, seconds=0.5)
    assert (third.images, third.seconds, third.attempts, third.shards_skipped) == (4, 3.5, 3, 1)


def test_the_newest_run_is_the_one_that_completed_last():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {"run_id": "old-config-rerun", "started_at": t, "finished_at": t + timedelta(hours=5)},
        {"run_id": "newer-start", "started_at": t + timedelta(hours=1), "finished_at": t + timedelta(hours=2)},
        {"run_id": "running", "started_at": t + timedelta(hours=6), "finished_at": None},
    ]
    assert [r["run_id"] for r in sorted(rows, key=recency)] == ["running", "newer-start", "old-config-rerun"]


HOLD = textwrap.dedent("""
    import sys, time
    from engine.catalog.lock import workdir_lock
    with workdir_lock(sys.argv[1], "a test holder"):
        print("locked", flush=True)
        time.sleep(600)
""")


def test_a_second_run_gets_a_lock_message_naming_the_holder_and_a_dead_holder_frees_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[1])
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkdirBusyError) as busy, workdir_lock(tmp_path, "labelling run x"):
            pass
        message = str(busy.value)
        assert f"pid {holder.pid}" in message and socket.gethostname() in message and "labelling run x" in message
        assert lock_holder(tmp_path)["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert (tmp_path / LOCK_NAME).read_text()  # the dead holder's note is still there: a stale lock file ...
    assert lock_holder(tmp_path) is None  # ... that holds nothing
    with workdir_lock(tmp_path, "labelling run x"):
        assert lock_holder(tmp_path)["pid"] == os.getpid()
    assert lock_holder(tmp_path) is None


@pytest.mark.slow
def test_sodforge_label_refuses_a_workdir_another_run_holds(tmp_path, sample_set):
    workdir = tmp_path / "wd"
    (workdir / "catalog" / "labels").mkdir(parents=True)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    with workdir_lock(workdir, "the test"):
        started = time.perf_counter()
        result = subprocess.run([str(BIN / "sodforge"), "label", str(sample_set), "--workdir", str(workdir)],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, output
    assert "is busy" in output and f"pid {os.getpid()}" in output
    assert not (workdir / "catalog" / "images").exists()  # refused before doing any work
    assert time.perf_counter() - started < 120


class _Done:
    def __init__(self, skipped: bool):
        self.value = {"skipped": skipped, "counts": {"ok": 2}}

    def result(self):
        return self.value


@pytest.mark.parametrize(("skipped", "calls"), [([False, False, False], 1), ([True, False, False], 1), ([True, True], 0)])
def test_the_catalog_is_rebuilt_once_the_first_shard_of_a_run_lands(skipped, calls):
    from flows.build_pseudo_labels import _gather_with_progress

    rebuilt = []
    results = _gather_with_progress([_Done(s) for s in skipped], logging.getLogger("test"), lambda: rebuilt.append(1))
    assert len(results) == len(skipped) and len(rebuilt) == calls


def test_a_running_first_run_is_visible_once_a_catalog_is_built_after_its_first_shard(tmp_path):
    wd = Workdir.at(tmp_path)
    begin_attempt(wd, "first", "build-pseudo-labels", {}, {})
    build_catalog(wd)  # at the start of the run: nothing labelled yet
    labels = [PseudoLabel(f"{i:032x}", f"raw/{i}.png", "first", "shard-00000", "no_object", error="nothing grounded")
              for i in range(3)]
    write_table_atomic(labels_to_table(labels), wd.labels_dir("first") / "shard-00000.parquet", "fp")
    build_catalog(wd)  # what the flow does when the first shard lands
    write_table_atomic(labels_to_table([PseudoLabel("f" * 32, "raw/x.png", "first", "shard-00001", "no_object",
                                                    error="none")]), wd.labels_dir("first") / "shard-00001.parquet", "fp")
    with duckdb.connect(str(wd.catalog_path), read_only=True) as con:  # later shards: no rebuild needed
        rows = con.execute("SELECT count(*), min(path) FROM label_quality WHERE run_id = 'first'").fetchone()
    assert rows == (4, str(tmp_path / "raw" / "0.png"))  # paths stored relative, shown absolute
