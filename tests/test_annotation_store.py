"""Annotation records, the append-only store, derived queries and the catalog views over them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from engine.annotations import (
    Annotation,
    AnnotationStore,
    human_texts,
    latest_answers,
    latest_reviews,
    relabel_queue,
)
from engine.catalog import Workdir, build_catalog

A, B = "a" * 32, "b" * 32
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "text", "text": ""}, "non-empty text"),
        ({"kind": "skip", "text": "dog"}, "carries no text"),
        ({"kind": "note"}, "kind must be one of"),
        ({"kind": "review", "verdict": "maybe", "run_id": "r1"}, "verdict must be one of"),
        ({"kind": "review", "verdict": "accept"}, "run id"),
        ({"kind": "review", "verdict": "comment", "run_id": "r1"}, "needs a non-empty comment"),
        ({"kind": "text", "text": "dog", "verdict": "accept"}, "carries no verdict"),
        ({"kind": "text", "text": "x" * 501}, "too long"),
        ({"kind": "text", "text": "dog", "lead_time_s": -1.0}, "lead_time_s"),
        ({"kind": "text", "text": "dog", "image_id": "../etc/passwd"}, "hex content id"),
        ({"kind": "text", "text": "dog", "annotator": "<script>"}, "annotator name"),
        ({"kind": "text", "text": "dog", "created_at": datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_bad_annotations_raise_value_errors(fields, message):
    base = {"image_id": A, "annotator": "ann", **fields}
    with pytest.raises(ValueError, match=message):
        Annotation(**base)


@pytest.mark.parametrize(
    ("text", "stored"),
    [("  red \t car ", "red car"), ("red\x00car\n", "red car"), ("<b>dog</b>", "<b>dog</b>"), ("ünïcode vase", "ünïcode vase")],
)
def test_texts_are_normalised_not_mangled(text, stored):
    assert Annotation(A, "text", "ann", text=text).text == stored


def test_started_at_follows_from_lead_time():
    annotation = Annotation(A, "text", "ann", text="dog", lead_time_s=2.5, created_at=at(10))
    assert annotation.started_at == at(7.5)


def test_store_appends_one_file_per_submission_and_ignores_temp_and_broken_files(tmp_path):
    store = AnnotationStore(tmp_path)
    first = store.append([Annotation(A, "text", "ann", text="dog", created_at=at(1))])
    second = store.append([Annotation(B, "skip", "ann", created_at=at(2))])
    assert first != second and first.is_file() and second.is_file()
    (first.parent / ".half.parquet.123.tmp").write_bytes(b"PAR1 half")
    (first.parent / "broken.parquet").write_bytes(b"not parquet")
    fresh = AnnotationStore(tmp_path)
    assert [(r["image_id"], r["kind"], r["text"]) for r in fresh.rows()] == [(A, "text", "dog"), (B, "skip", None)]


def test_skip_existing_makes_imports_idempotent(tmp_path):
    store = AnnotationStore(tmp_path)
    items = [Annotation(A, "text", "ann", text="dog", annotation_id="x1"), Annotation(B, "skip", "ann", annotation_id="x2")]
    assert store.append(items, skip_existing=True) is not None
    assert store.append(items, skip_existing=True) is None
    assert len(store.rows()) == 2


def test_appending_while_a_reader_holds_the_catalog_open(tmp_path):
    store = AnnotationStore(tmp_path)
    store.append([Annotation(A, "text", "ann", text="dog")])
    catalog = build_catalog(tmp_path)
    with duckdb.connect(str(catalog), read_only=True) as reader:  # a flow or notebook reading meanwhile
        assert reader.execute("SELECT count(*) FROM annotations").fetchone() == (1,)
        store.append([Annotation(B, "text", "ann", text="cat")])
        assert reader.execute("SELECT count(*) FROM annotations").fetchone() == (2,)


def test_compaction_merges_deduplicates_and_keeps_rows_visible(tmp_path):
    store = AnnotationStore(tmp_path, refresh_catalog=True)
    for i in range(4):
        store.append([Annotation(A, "text", f"ann{i}", text="dog", created_at=at(i), annotation_id=f"id{i}")])
    store.append([Annotation(A, "text", "ann0", text="dog", created_at=at(0), annotation_id="id0"),  # id0 again
                  Annotation(B, "skip", "ann0", created_at=at(9), annotation_id="id9")])
    result = store.compact()
    assert (result.files, result.rows) == (5, 5) and store.files() == [result.merged]
    assert store.compact().merged is None  # one file left: nothing to do
    with duckdb.connect(str(Workdir.at(tmp_path).catalog_path), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT annotation_id) FROM annotations").fetchone() == (5, 5)


def _row(image_id, kind, annotator, seconds, **extra):
    return {"image_id": image_id, "kind": kind, "annotator": annotator, "created_at": at(seconds),
            "text": extra.get("text"), "verdict": extra.get("verdict"), "comment": extra.get("comment"),
            "run_id": extra.get("run_id")}


def test_latest_answer_per_annotator_wins():
    rows = [_row(A, "text", "x", 1, text="dog"), _row(A, "skip", "x", 2), _row(A, "text", "y", 3, text="cat"),
            _row(B, "skip", "x", 4), _row(B, "text", "x", 5, text="vase")]
    assert {k: v["kind"] for k, v in latest_answers(rows).items()} == {(A, "x"): "skip", (A, "y"): "text", (B, "x"): "text"}
    assert human_texts(rows) == {A: [("y", "cat")], B: [("x", "vase")]}


@pytest.mark.parametrize(
    ("rows", "queue"),
    [
        ([_row(A, "review", "x", 1, verdict="reject", run_id="r")], [A]),
        ([_row(A, "review", "x", 1, verdict="reject", run_id="r"), _row(A, "text", "y", 2, text="dog")], []),
        ([_row(A, "text", "y", 1, text="dog"), _row(A, "review", "x", 2, verdict="reject", run_id="r")], [A]),
        ([_row(A, "review", "x", 1, verdict="reject", run_id="r"), _row(A, "review", "x", 2, verdict="accept", run_id="r")], []),
        ([_row(A, "review", "x", 1, verdict="comment", comment="hm", run_id="r")], []),
    ],
)
def test_relabel_queue(rows, queue):
    assert relabel_queue(rows) == queue


def test_latest_reviews_keep_verdict_and_comment_apart():
    rows = [_row(A, "review", "x", 1, verdict="reject", run_id="r"),
            _row(A, "review", "y", 2, verdict="comment", comment="edge too rough", run_id="r"),
            _row(A, "review", "x", 3, verdict="accept", run_id="other")]
    review = latest_reviews(rows, "r")[(A, "r")]
    assert (review["verdict"], review["comment"], review["annotator"]) == ("reject", "edge too rough", "x")
