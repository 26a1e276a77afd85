"""Manifests and label shards are the same bytes in every clone: paths relative, no mtimes."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from engine.catalog import Workdir, build_catalog
from engine.datasets import generate_sample_set
from engine.images import manifest as manifest_module
from engine.images.manifest import MANIFEST_SCHEMA, ingest, manifest_rows, read_manifest, stat_cache_path
from engine.images.paths import resolve_stored, shard_root, to_stored


@pytest.mark.parametrize(
    ("path", "root", "stored"),
    [
        ("/p/data/raw/a.jpg", "/p/data", "raw/a.jpg"),
        ("/p/raw/a.jpg", "/p/data/gt-labels/sample", "../../../raw/a.jpg"),
        ("/mnt/photos/a.jpg", "/home/u/runs/x", "/mnt/photos/a.jpg"),  # only the fs root in common: absolute
        ("/p/data/a b/ü.jpg", "/p/data", "a b/ü.jpg"),
    ],
)
def test_stored_paths_round_trip(path, root, stored):
    assert to_stored(path, root) == stored
    assert resolve_stored(stored, root) == path


@pytest.mark.parametrize(
    ("shard", "root"),
    [
        ("/p/data/catalog/images/shard-00000.parquet", "/p/data"),
        ("/p/data/catalog/labels/run=ab/shard-00000.parquet", "/p/data"),
        ("/p/data/catalog/labels_refined/run=refine-x/shard-00000.parquet", "/p/data"),
        ("/p/data/catalog/compact/labels-run=ab.parquet", "/p/data"),
        ("/p/data/gt-labels/sample/run=gt-1/shard-00000.parquet", "/p/data/gt-labels/sample"),
        ("/p/labels/shard-00000.parquet", "/p/labels"),
    ],
)
def test_shard_root_follows_the_layout(shard, root):
    assert str(shard_root(shard)) == root


def _project(base):
    generate_sample_set(base / "data" / "raw" / "set", count=5, size_hw=(32, 40), seed=2, with_depth=True)
    wd = Workdir.at(base / "data")
    ingest(base / "data" / "raw" / "set", wd.manifest_dir, shard_size=3)
    return wd


def test_a_cloned_project_has_byte_identical_manifests_that_resolve_in_the_clone(tmp_path):
    wd = _project(tmp_path / "one")
    assert "mtime_ns" not in MANIFEST_SCHEMA.names
    rows = [row for _, shard in read_manifest(wd.manifest_dir) for row in shard]
    assert all(row["path"].startswith("raw/set/images/") and row["depth_path"].startswith("raw/set/depth/") for row in rows)

    clone = tmp_path / "elsewhere" / "two"
    shutil.copytree(tmp_path / "one" / "data" / "raw", clone / "data" / "raw")  # a fresh clone: same files, new mtimes
    other = Workdir.at(clone / "data")
    ingest(clone / "data" / "raw" / "set", other.manifest_dir, shard_size=3)
    for shard in sorted(wd.manifest_dir.glob("shard-*.parquet")):
        assert shard.read_bytes() == (other.manifest_dir / shard.name).read_bytes(), shard.name

    for row in manifest_rows(other.manifest_dir / "shard-00000.parquet"):
        assert row["path"].startswith(str(clone)) and (clone / "data" / "raw" / "set" / "images").joinpath(
            row["path"].rsplit("/", 1)[1]).is_file()
    with duckdb.connect(str(build_catalog(other)), read_only=True) as con:  # the catalog shows usable paths
        paths = [r[0] for r in con.execute("SELECT path FROM images UNION ALL SELECT depth_path FROM images").fetchall()]
    assert len(paths) == 10 and all(p.startswith(str(clone)) for p in paths)


def test_sizes_and_mtimes_stay_outside_the_manifest_and_spare_rehashing(tmp_path, monkeypatch):
    wd = _project(tmp_path)
    assert stat_cache_path(wd.manifest_dir).is_file() and stat_cache_path(wd.manifest_dir).parent == wd.data
    hashed = []
    real = manifest_module.file_content_id
    monkeypatch.setattr(manifest_module, "file_content_id", lambda p: hashed.append(p) or real(p))
    before = {p.name: p.read_bytes() for p in wd.manifest_dir.glob("*.parquet")}
    result = ingest(tmp_path / "data" / "raw" / "set", wd.manifest_dir, shard_size=3)
    assert hashed == [] and result.rewritten_shards == 0  # unchanged files: no hashing, no writes
    assert before == {p.name: p.read_bytes() for p in wd.manifest_dir.glob("*.parquet")}
    touched = sorted((tmp_path / "data" / "raw" / "set" / "images").iterdir())[0]
    touched.write_bytes(touched.read_bytes())  # same bytes, new mtime: hashed again, shards unchanged
    assert ingest(tmp_path / "data" / "raw" / "set", wd.manifest_dir, shard_size=3).rewritten_shards == 0
    assert [p.name for p in hashed] == [touched.name]
