"""Shards, fingerprints and atomic Parquet files."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from engine.storage import (
    chunk_ids,
    fingerprint,
    read_fingerprint,
    read_table,
    shard_is_current,
    shard_name,
    write_table_atomic,
)


@pytest.mark.parametrize(
    ("ids", "size", "expected"),
    [
        (["a", "b", "c"], 2, [["a", "b"], ["c"]]),
        (["a", "b"], 2, [["a", "b"]]),
        ([], 3, []),
        (["a"], 5, [["a"]]),
    ],
)
def test_chunk_ids(ids, size, expected):
    assert chunk_ids(ids, size) == expected


@pytest.mark.parametrize(("call", "message"), [(lambda: chunk_ids(["a"], 0), "shard_size"), (lambda: shard_name(-1), "index")])
def test_shard_planning_rejects_bad_values(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_shard_name_sorts():
    assert shard_name(3) == "shard-00003" and sorted([shard_name(10), shard_name(9)]) == [shard_name(9), shard_name(10)]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"x": 1, "y": [1, 2]}, {"y": [1, 2], "x": 1}, True),
        ({"x": 1}, {"x": 2}, False),
        ({"x": 0.1}, {"x": 0.1000001}, False),
        ({"x": (1, 2)}, {"x": [1, 2]}, True),
    ],
)
def test_fingerprint_is_order_independent_and_value_sensitive(a, b, same):
    assert (fingerprint(a) == fingerprint(b)) is same


def test_fingerprint_rejects_unhashable_types():
    with pytest.raises(TypeError, match="cannot fingerprint"):
        fingerprint(object())


def test_atomic_write_roundtrip_and_fingerprint(tmp_path):
    table = pa.table({"a": [1, 2, 3]})
    path = write_table_atomic(table, tmp_path / "sub" / "x.parquet", "abc123")
    assert read_table(path).column("a").to_pylist() == [1, 2, 3]
    assert read_fingerprint(path) == "abc123"
    assert shard_is_current(path, "abc123") and not shard_is_current(path, "other")
    assert [p.name for p in path.parent.iterdir()] == ["x.parquet"]  # no temp file left behind


def test_write_that_dies_midway_leaves_nothing_visible(tmp_path, monkeypatch):
    import engine.storage.parquet as parquet_module

    def dies_midway(table, handle, **kwargs):
        handle.write(b"PAR1 half a file")
        raise OSError("disk full")

    write_table_atomic(pa.table({"a": [1]}), tmp_path / "y.parquet", "old")
    monkeypatch.setattr(parquet_module.pq, "write_table", dies_midway)
    with pytest.raises(OSError, match="disk full"):
        write_table_atomic(pa.table({"a": [2]}), tmp_path / "y.parquet", "new")
    assert [p.name for p in tmp_path.iterdir()] == ["y.parquet"]  # no temp file left behind
    assert read_fingerprint(tmp_path / "y.parquet") == "old"  # the previous whole file is untouched


def test_corrupt_shard_is_not_current(tmp_path):
    path = write_table_atomic(pa.table({"a": [1]}), tmp_path / "x.parquet", "fp")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated, as after a crash without atomic writes
    assert read_fingerprint(path) is None
    assert not shard_is_current(path, "fp")
    with pytest.raises(ValueError, match="x.parquet"):
        read_table(path)


def test_missing_shard_is_not_current(tmp_path):
    assert not shard_is_current(tmp_path / "nope.parquet", "fp")
    assert not os.path.exists(tmp_path / "nope.parquet")
