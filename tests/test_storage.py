"""Shards, fingerprints and atomic Parquet files."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest
from bad_files import flip_mid_page

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


def test_mid_file_damage_is_found_by_page_checksums(tmp_path):
    import numpy as np

    from engine.storage import verify_table

    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list("abcdefghij0123456789"), 300)) for _ in range(20)]
    path = write_table_atomic(pa.table({"id": list(range(20)), "mask_rle": texts}), tmp_path / "x.parquet", "fp")
    assert verify_table(path) is None and shard_is_current(path, "fp")
    flip_mid_page(path, "mask_rle")
    assert read_fingerprint(path) == "fp"  # the footer still says "current"...
    assert "checksum" in verify_table(path).lower()  # ...but the pages do not add up
    assert not shard_is_current(path, "fp") and shard_is_current(path, "fp", verify=False)
    with pytest.raises(ValueError, match=r"x.parquet: not a readable Parquet file"):
        read_table(path)


def test_a_full_disk_names_the_file_and_leaves_the_old_one(tmp_path, monkeypatch):
    import errno

    import engine.storage.parquet as parquet_module
    from engine.storage import WriteError, write_text_atomic

    write_table_atomic(pa.table({"a": [1]}), tmp_path / "y.parquet", "old")

    def disk_full(table, handle, **kwargs):
        handle.write(b"PAR1 a few bytes")
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    monkeypatch.setattr(parquet_module.pq, "write_table", disk_full)
    with pytest.raises(WriteError) as info:
        write_table_atomic(pa.table({"a": [2]}), tmp_path / "y.parquet", "new")
    assert str(info.value) == (f"cannot write {tmp_path / 'y.parquet'}: [Errno 28] No space left on device "
                               "(disk full: free space and rerun; finished work is kept)")
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert str(tmp_path / "y.parquet") in repr(info.value)  # Prefect logs the repr
    assert [p.name for p in tmp_path.iterdir()] == ["y.parquet"] and read_fingerprint(tmp_path / "y.parquet") == "old"

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("engine.storage.files.os.fsync", no_room)
    with pytest.raises(WriteError, match=r"cannot write .*report.txt: \[Errno 28\] No space left on device"):
        write_text_atomic("hello", tmp_path / "report.txt")
    assert not (tmp_path / "report.txt").exists()


def test_no_single_byte_flip_passes_as_current_with_wrong_data(tmp_path):
    """Flip each byte (every 5th) of a small shard: the check never raises, and it never calls a shard
    current whose rows differ from what was written."""
    import pyarrow.parquet as pq

    table = pa.table({"id": list(range(8)), "mask_rle": [f"{i}xYz" * (5 + i) for i in range(8)],
                      "score": [i / 8 for i in range(8)]})
    path = write_table_atomic(table, tmp_path / "x.parquet", "fp")
    data = path.read_bytes()
    damaged = tmp_path / "d.parquet"
    passed = 0
    for offset in range(0, len(data), 5):
        flipped = bytearray(data)
        flipped[offset] ^= 0xFF
        damaged.write_bytes(bytes(flipped))
        if shard_is_current(damaged, "fp"):
            passed += 1
            assert pq.read_table(damaged).equals(table.replace_schema_metadata(pq.read_schema(damaged).metadata))
    assert passed < len(data) // 5 // 2  # most flips are caught; the rest changed nothing that is read (stats...)


def _schemas():
    from engine.annotations.store import ANNOTATION_SCHEMA
    from engine.catalog.runs import RUN_SCHEMA
    from engine.export.hf import hf_features
    from engine.images.manifest import MANIFEST_SCHEMA
    from engine.labeling.record import LABEL_SCHEMA

    return {"labels": LABEL_SCHEMA, "manifest": MANIFEST_SCHEMA, "runs": RUN_SCHEMA, "annotations": ANNOTATION_SCHEMA,
            "hf": hf_features().arrow_schema, "nested": pa.schema([("b", pa.list_(pa.list_(pa.float32(), 4))),
                                                                    ("s", pa.struct([("x", pa.list_(pa.int8()))]))])}


@pytest.mark.parametrize("name", sorted(_schemas()))
def test_every_schema_we_write_verifies_after_a_round_trip(tmp_path, name):
    from engine.storage import verify_table

    schema = _schemas()[name]
    row = {field.name: None for field in schema}
    for table in (schema.empty_table(), pa.Table.from_pylist([row, row], schema=schema)):
        path = write_table_atomic(table, tmp_path / f"{name}.parquet", "fp")
        assert verify_table(path) is None and shard_is_current(path, "fp")
