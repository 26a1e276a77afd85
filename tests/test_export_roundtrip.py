"""Exports of a tiny workdir: DUTS folders, COCO RLE JSON and HF Parquet each read back to the same masks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.catalog import RunRecord, Workdir, build_catalog
from engine.export import EXPORTERS, export_coco, export_duts, export_hf, read_coco_masks, read_duts_masks
from engine.export.media import read_mask_png
from engine.labeling.record import PseudoLabel, labels_to_table
from engine.masks import decode_rle, encode_rle
from engine.storage import write_table_atomic

H, W = 24, 32


def mask_for(index: int) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[2 + index : 12 + index, 3 * index : 3 * index + 9] = True
    return mask


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Run ``new``: 6 images (0-3 ok with quality 0.2 * i, 4 no_object, 5 error), two named ``dup``
    in different folders, image 3 a JPEG stored sideways with EXIF orientation 6. Run ``old``: image 0 only."""
    root = tmp_path_factory.mktemp("export")
    images = root / "images"
    (images / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        pixels = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
        path = images / ("sub" if i == 1 else "") / ("dup.jpg" if i in (0, 1) else f"img{i}.jpg")
        if i == 3:  # stored as W x H with EXIF orientation 6 (rotate 90 cw): oriented size is H x W
            exif = Image.Exif()
            exif[0x0112] = 6
            Image.fromarray(np.rot90(pixels, 1).copy()).save(path, exif=exif)
        else:
            Image.fromarray(pixels).save(path, quality=95)
        paths.append(path)
    wd = Workdir.at(root / "work")
    statuses = ["ok", "ok", "ok", "ok", "no_object", "error"]
    labels = [
        PseudoLabel(
            image_id=f"{i:02d}" + "ab" * 8, path=str(paths[i]), run_id="new", shard="shard-00000", status=s,
            error="broken" if s == "error" else None, height=None if s == "error" else H,
            width=None if s == "error" else W, caption=f"a photo of thing {i}", phrase=f"thing {i}",
            category=["cat", "dog"][i % 2] if s == "ok" else None,
            mask_rle=encode_rle(mask_for(i)) if s == "ok" else None, quality_score=0.2 * i,
        )
        for i, s in enumerate(statuses)
    ]
    now = datetime.now(UTC)
    write_table_atomic(labels_to_table(labels), wd.labels_dir("new") / "shard-00000.parquet")
    RunRecord("new", "build-pseudo-labels", {}, {}, started_at=now).save(wd)
    old = PseudoLabel(image_id="00" + "ab" * 8, path=str(paths[0]), run_id="old", shard="shard-00000", status="ok",
                      height=H, width=W, mask_rle=encode_rle(np.ones((H, W), bool)), quality_score=0.9)
    write_table_atomic(labels_to_table([old]), wd.labels_dir("old") / "shard-00000.parquet")
    RunRecord("old", "build-pseudo-labels", {}, {}, started_at=now - timedelta(days=1)).save(wd)
    build_catalog(wd)
    return wd.root


def expected_masks() -> dict[str, np.ndarray]:
    return {"dup_00ababab": mask_for(0), "dup_01ababab": mask_for(1), "img2": mask_for(2), "img3": mask_for(3)}


def test_duts_round_trip(workdir, tmp_path):
    result = export_duts(workdir, tmp_path / "duts")
    assert (result.run_id, result.selected, result.exported, result.skipped) == ("new", 4, 4, [])
    masks = read_duts_masks(tmp_path / "duts")
    assert sorted(masks) == sorted(expected_masks())
    for name, mask in expected_masks().items():
        assert np.array_equal(masks[name], mask), name
        raw = cv2.imread(str(tmp_path / "duts" / "Mask" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert raw.dtype == np.uint8 and set(np.unique(raw)) <= {0, 255}
        image = cv2.imread(str(tmp_path / "duts" / "Image" / f"{name}.jpg"))
        assert image.shape[:2] == (H, W), name  # the EXIF-rotated one is re-encoded upright
    assert result.reencoded == 1
    assert (tmp_path / "duts" / "index.csv").read_text().count("\n") == 5


def test_coco_round_trip(workdir, tmp_path):
    result = export_coco(workdir, tmp_path / "coco", where="status IN ('ok', 'no_object')")
    assert result.exported == 5
    doc = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert {c["name"] for c in doc["categories"]} == {"cat", "dog"}
    assert len(doc["images"]) == 5 and len(doc["annotations"]) == 4
    masks = read_coco_masks(tmp_path / "coco" / "annotations.json")
    by_stem = {Path(name).stem: mask for name, mask in masks.items()}
    for name, mask in expected_masks().items():
        assert np.array_equal(by_stem[name], mask), name
    assert not by_stem["img4"].any()  # no_object: an image without annotations
    first = doc["annotations"][0]
    assert first["bbox"] == [0.0, 2.0, 9.0, 10.0] and first["area"] == 90 and first["iscrowd"] == 0
    assert all((tmp_path / "coco" / "images" / img["file_name"]).is_file() for img in doc["images"])


def test_hf_round_trip_with_datasets(workdir, tmp_path):
    import datasets

    result = export_hf(workdir, tmp_path / "hf", where="quality_score >= 0.3 AND status = 'ok'", rows_per_file=1)
    assert result.exported == 2
    assert len(list((tmp_path / "hf" / "data").glob("*.parquet"))) == 2
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "hf" / "data"), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert len(ds) == 2 and {"image", "mask", "caption", "phrase", "category", "quality_score"} <= set(ds.column_names)
    for row in ds:
        index = int(row["phrase"].split()[-1])
        assert np.array_equal(np.asarray(row["mask"]) > 128, mask_for(index)), row["source_path"]
        assert row["image"].size == (W, H)
        assert row["caption"] == f"a photo of thing {index}" and row["quality_score"] >= 0.3


def test_hf_raw_parquet_holds_png_masks(workdir, tmp_path):
    import pyarrow.parquet as pq

    export_hf(workdir, tmp_path / "hf")
    table = pq.read_table(tmp_path / "hf" / "data" / "train-00000.parquet")
    assert b"huggingface" in table.schema.metadata
    for row in table.to_pylist():
        index = int(row["phrase"].split()[-1])
        assert np.array_equal(read_mask_png(row["mask"]["bytes"]), mask_for(index))


def test_older_run_and_empty_selection(workdir, tmp_path):
    result = export_duts(workdir, tmp_path / "old", run_id="old")
    assert result.exported == 1 and read_duts_masks(tmp_path / "old")["dup"].all()
    empty = export_hf(workdir, tmp_path / "none", where="quality_score > 5")
    assert empty.exported == 0 and (tmp_path / "none" / "data" / "train-00000.parquet").is_file()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"where": "no_such_column > 1"}, "not a valid condition"),
        ({"run_id": "missing"}, "has no labels"),
    ],
)
def test_bad_selection_is_a_clear_error(workdir, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        export_duts(workdir, tmp_path / "bad", **kwargs)


def test_error_rows_are_skipped_and_listed(workdir, tmp_path):
    result = export_duts(workdir, tmp_path / "all", where="true")
    assert result.exported == 5 and [s["path"].endswith("img5.jpg") for s in result.skipped] == [True]
    saved = json.loads((tmp_path / "all" / "export.json").read_text())
    assert "broken" in saved["skipped"][0]["reason"]


def test_out_folder_is_protected(workdir, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        export_coco(workdir, tmp_path / "busy")
    with pytest.raises(ValueError, match="refusing"):
        export_coco(workdir, tmp_path / "busy", overwrite=True)
    export_coco(workdir, tmp_path / "again")
    assert export_coco(workdir, tmp_path / "again", overwrite=True).exported == 4


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_cli_export(workdir, tmp_path, fmt):
    from typer.testing import CliRunner

    from sodforge.cli import app

    out = tmp_path / fmt
    result = CliRunner().invoke(app, ["export", "--workdir", str(workdir), "--format", fmt, "--out", str(out),
                                      "--where", "status = 'ok' AND category = 'cat'"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "export.json").read_text())["exported"] == 2


def test_rle_in_catalog_matches_decode(workdir):
    from engine.catalog import connect_readonly

    with connect_readonly(Path(workdir) / "catalog.duckdb") as con:
        counts = con.execute("SELECT mask_rle FROM labels WHERE run_id = 'new' AND path LIKE '%img2.jpg'").fetchone()[0]
    assert np.array_equal(decode_rle(counts, (H, W)), mask_for(2))


def test_export_flow_writes_every_format(prefect_harness, workdir, tmp_path):
    import json

    from flows.export import export

    reports = export(workdir=str(workdir), out=str(tmp_path / "out"))
    assert set(reports) == {"duts", "coco", "hf"}
    for fmt, report in reports.items():
        summary = json.loads(open(report).read())
        assert summary["exported"] >= 1, (fmt, summary)
    assert any((tmp_path / "out" / "duts" / "Mask").glob("*.png"))
