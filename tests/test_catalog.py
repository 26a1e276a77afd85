"""The catalog: views only, over Parquet shards; readable read-only with plain duckdb."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from bad_files import flip_mid_page

from engine.catalog import VIEW_NAMES, RunRecord, Workdir, build_catalog, connect_readonly, summarize
from engine.labeling import PseudoLabel, labels_to_table
from engine.masks import decode_rle, encode_rle
from engine.storage import write_table_atomic


def _labels(run_id: str) -> list[PseudoLabel]:
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    return [
        PseudoLabel("id-a", "/x/a.jpg", run_id, "shard-00000", "ok", height=4, width=6, caption="a photo of a red car",
                    phrase="red car", category="car", boxes_xyxy=[[2, 1, 5, 3], [0, 0, 1, 1]], box_scores=[0.9, 0.4],
                    box_labels=["red car", "car"], mask_rle=encode_rle(mask), best_box_score=0.9, box_count=2,
                    sam_pred_iou=0.8, stability_score=0.95, mask_area_frac=0.25, components=1,
                    boundary_smoothness=1.0, quality_score=0.7),
        PseudoLabel("id-b", "/x/b.jpg", run_id, "shard-00000", "no_object", error="no box", height=4, width=6,
                    caption="a cat", phrase="cat", category="cat"),
        PseudoLabel("id-c", "/x/c.jpg", run_id, "shard-00001", "error", error="/x/c.jpg: not an image"),
    ]


@pytest.fixture
def workdir(tmp_path) -> Workdir:
    wd = Workdir.at(tmp_path / "wd")
    labels = _labels("r1")
    write_table_atomic(labels_to_table(labels[:2]), wd.labels_dir("r1") / "shard-00000.parquet", "f0")
    write_table_atomic(labels_to_table(labels[2:]), wd.labels_dir("r1") / "shard-00001.parquet", "f1")
    RunRecord("r1", "build-pseudo-labels", {"captioner": "blip:tiny"}, {"label": {}}, state="completed").save(wd)
    build_catalog(wd)
    return wd


def test_empty_workdir_has_every_view_with_columns(tmp_path):
    path = build_catalog(tmp_path)
    with connect_readonly(path) as con:
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
        assert set(VIEW_NAMES) <= views
        assert {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()} == set()
        for view in VIEW_NAMES:
            assert con.execute(f"SELECT count(*) FROM {view}").fetchone() == (0,)
        columns = [r[0] for r in con.execute("DESCRIBE label_quality").fetchall()]
    for column in ("image_id", "path", "caption", "phrase", "category", "box_count", "best_box_score",
                   "mask_area_frac", "sam_pred_iou", "shape_score", "quality_score", "status", "error"):
        assert column in columns


def test_shards_written_before_shape_score_existed_still_read(tmp_path):
    wd = Workdir.at(tmp_path / "old")
    table = labels_to_table(_labels("r0")[:1])
    old = table.drop_columns(["shape_score"])  # the label schema before the column was added
    write_table_atomic(old, wd.labels_dir("r0") / "shard-00000.parquet", "f0")
    build_catalog(wd)
    with connect_readonly(wd.catalog_path) as con:
        assert con.execute("SELECT image_id, shape_score, quality_score FROM label_quality").fetchall() == [
            ("id-a", None, pytest.approx(0.7))]


def test_views_answer_from_shards(workdir):
    with duckdb.connect(str(workdir.catalog_path), read_only=True) as con:
        assert con.execute("SELECT status, count(*) FROM label_quality GROUP BY 1 ORDER BY 1").fetchall() == [
            ("error", 1), ("no_object", 1), ("ok", 1)]
        assert con.execute("SELECT box_index, x0, y1, score, label FROM detections ORDER BY box_index").fetchall() == [
            (1, 2.0, 3.0, pytest.approx(0.9), "red car"), (2, 0.0, 1.0, pytest.approx(0.4), "car")]
        counts, height, width = con.execute("SELECT mask_rle, height, width FROM masks").fetchone()
        assert decode_rle(counts, (height, width)).sum() == 6
        assert con.execute("SELECT category FROM captions ORDER BY category").fetchall() == [("car",), ("cat",)]
        assert con.execute("SELECT state, flow FROM runs").fetchall() == [("completed", "build-pseudo-labels")]
        assert con.execute("SELECT error FROM label_quality WHERE status = 'error'").fetchone()[0].startswith("/x/c.jpg")


def test_summary(workdir):
    (run,) = summarize(workdir.catalog_path)
    assert run.run_id == "r1" and run.images == 3
    assert run.statuses == {"error": 1, "no_object": 1, "ok": 1}
    assert run.mean_quality == pytest.approx(0.7) and run.categories == 2
    assert run.error_examples == ["/x/c.jpg: not an image"]


def test_running_runs_are_live_and_finished_runs_compacted(workdir):
    compact = workdir.data / "compact" / "labels-run=r1.parquet"
    assert compact.is_file()  # r1 is completed: read from one compacted file
    RunRecord("r2", "build-pseudo-labels", {}, {}).save(workdir)  # a run starts (state: running) ...
    build_catalog(workdir)  # ... and the flow rebuilds the catalog, so its live shards are in the views
    reader = connect_readonly(workdir.catalog_path)
    try:
        labels = _labels("r2")
        write_table_atomic(labels_to_table(labels[:2]), workdir.labels_dir("r2") / "shard-00000.parquet", "g")
        # a shard that lands is visible to an open reader at once, no rebuild needed
        assert reader.execute("SELECT count(*) FROM label_quality WHERE run_id = 'r2'").fetchone() == (2,)
        write_table_atomic(labels_to_table(labels[2:]), workdir.labels_dir("r2") / "shard-00001.parquet", "h")
        RunRecord("r2", "build-pseudo-labels", {}, {}, state="completed").save(workdir)
        build_catalog(workdir)  # never blocked by the open reader
        assert reader.execute("SELECT count(*) FROM label_quality WHERE run_id = 'r2'").fetchone() == (3,)
    finally:
        reader.close()
    with connect_readonly(workdir.catalog_path) as con:
        assert con.execute("SELECT count(DISTINCT run_id), count(*) FROM label_quality").fetchone() == (2, 6)
    before = compact.stat().st_mtime_ns
    build_catalog(workdir)
    assert compact.stat().st_mtime_ns == before  # unchanged shards: the copy is not rewritten


def test_a_changed_shard_set_refreshes_its_compacted_copy(workdir):
    extra = _labels("r1")[:1]
    extra[0].image_id = "id-z"
    write_table_atomic(labels_to_table(extra), workdir.labels_dir("r1") / "shard-00002.parquet", "z")
    build_catalog(workdir)
    with connect_readonly(workdir.catalog_path) as con:
        assert con.execute("SELECT count(*) FROM label_quality WHERE run_id = 'r1'").fetchone() == (4,)


def test_missing_catalog_message(tmp_path):
    with pytest.raises(ValueError, match="no catalog here"):
        connect_readonly(tmp_path / "catalog.duckdb")


def test_record_validation():
    with pytest.raises(ValueError, match="status must be one of"):
        PseudoLabel("i", "p", "r", "s", "maybe")
    with pytest.raises(ValueError, match="needs a mask"):
        PseudoLabel("i", "p", "r", "s", "ok")
    with pytest.raises(ValueError, match="needs an error message"):
        PseudoLabel("i", "p", "r", "s", "error")


def test_refined_versions_join_the_views_with_their_extra_columns(workdir):
    with connect_readonly(workdir.catalog_path) as con:  # no refined run yet: the columns exist, NULL
        assert con.execute("SELECT count(cue_agreement), count(*) FROM label_quality").fetchone() == (0, 3)
    table = labels_to_table(_labels("refine-x")[:1])
    table = table.append_column("cue_agreement", pa.array([0.75], pa.float32()))
    table = table.append_column("refine_change", pa.array([0.1], pa.float32()))
    write_table_atomic(table, workdir.refined_root / "run=refine-x" / "shard-00000.parquet", "r")
    build_catalog(workdir)
    with connect_readonly(workdir.catalog_path) as con:
        assert con.execute(
            "SELECT run_id, cue_agreement, refine_change FROM label_quality WHERE cue_agreement IS NOT NULL"
        ).fetchall() == [("refine-x", pytest.approx(0.75), pytest.approx(0.1))]
        assert con.execute("SELECT count(*) FROM masks").fetchone() == (2,)


def _rows(workdir: Workdir) -> list[tuple]:
    with connect_readonly(workdir.catalog_path) as con:
        return con.execute("SELECT image_id, status FROM label_quality ORDER BY image_id").fetchall()


class _FullDiskConnection:
    """A DuckDB connection whose CHECKPOINT fails as on a full disk (close() alone would stay silent)."""

    def __init__(self, con):
        self.con = con

    def execute(self, sql, *args):
        if sql.strip().upper() == "CHECKPOINT":
            raise duckdb.IOException('IO Error: Could not write file "catalog.tmp": No space left on device')
        return self.con.execute(sql, *args)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.con.close()


def test_catalog_build_on_a_full_disk_keeps_the_old_catalog(workdir, monkeypatch):
    import engine.catalog.views as views
    from engine.storage import WriteError

    before = _rows(workdir)
    real_connect = duckdb.connect
    monkeypatch.setattr(views.duckdb, "connect", lambda *a, **k: _FullDiskConnection(real_connect(*a, **k)))
    with pytest.raises(WriteError) as info:  # never "catalog written" for a catalog without views
        build_catalog(workdir)
    message = str(info.value)
    assert message.startswith(f"cannot write {workdir.catalog_path}: [Errno 28]") and "No space left on device" in message
    assert "the previous catalog (if any) is kept" in message
    monkeypatch.undo()
    assert _rows(workdir) == before  # the old catalog still answers
    assert sorted(p.name for p in workdir.root.iterdir()) == ["catalog", "catalog.duckdb"]  # no temp files left


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: duckdb.connect(str(path)).close(), "views missing: images, annotations"),
        (lambda path: (build_catalog(path.parent), (path.parent / "catalog.duckdb").rename(path),
                       path.with_name(path.name + ".wal").write_bytes(b"x" * 64)), "write-ahead log"),
    ],
)
def test_check_catalog_finds_broken_catalogs(tmp_path, make, problem):
    from engine.catalog.views import check_catalog

    path = tmp_path / "candidate.duckdb"
    make(path)
    assert problem in check_catalog(path)


def test_a_catalog_that_fails_its_check_never_replaces_the_old_one(workdir, monkeypatch):
    import engine.catalog.views as views

    before = _rows(workdir)
    monkeypatch.setattr(views, "check_catalog", lambda path: "views missing: labels")
    with pytest.raises(OSError, match="the new catalog failed its check: views missing: labels"):
        build_catalog(workdir)
    assert _rows(workdir) == before


def test_a_damaged_shard_is_left_out_of_the_catalog_until_recomputed(workdir, caplog):
    shard = workdir.labels_dir("r1") / "shard-00000.parquet"
    good = shard.read_bytes()
    flip_mid_page(shard, "caption")
    build_catalog(workdir)  # neither fails nor serves the damaged rows
    assert _rows(workdir) == [("id-c", "error")]
    assert "damaged shard" in caplog.text and "shard-00000.parquet" in caplog.text
    shard.write_bytes(good)  # recomputed
    build_catalog(workdir)
    assert [r[0] for r in _rows(workdir)] == ["id-a", "id-b", "id-c"]
