"""Reading odd and broken images, content ids, and ingest into manifest shards."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.images import ImageReadError, content_id, file_content_id, read_rgb
from engine.images.io import read_size_hw
from engine.images.manifest import ingest, read_manifest


def _save(path, image: Image.Image, **kwargs):
    image.save(path, **kwargs)
    return path


def _exif_rotated(path):
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    image.save(path, exif=exif.tobytes())
    return path


ODD_BUT_VALID = {
    "rgb.jpg": (lambda p: _save(p, Image.new("RGB", (32, 24), (10, 20, 30)))),
    "cmyk.jpg": (lambda p: _save(p, Image.new("CMYK", (32, 24), (0, 255, 255, 0)))),
    "gray.png": (lambda p: _save(p, Image.new("L", (32, 24), 128))),
    "palette.png": (lambda p: _save(p, Image.new("RGB", (32, 24), (0, 200, 0)).convert("P"))),
    "alpha.png": (lambda p: _save(p, Image.new("RGBA", (32, 24), (255, 0, 0, 0)))),
    "sixteen.png": (lambda p: _save(p, Image.fromarray(np.tile(np.arange(32, dtype=np.uint16) * 2000, (24, 1))))),
    "exif.jpg": _exif_rotated,
}


@pytest.mark.parametrize("name", sorted(ODD_BUT_VALID))
def test_odd_images_become_rgb_uint8(tmp_path, name):
    path = ODD_BUT_VALID[name](tmp_path / name)
    rgb = read_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    expected_hw = (40, 20) if name == "exif.jpg" else (24, 32)
    assert rgb.shape[:2] == expected_hw
    assert read_size_hw(path) == expected_hw


@pytest.mark.parametrize(
    ("name", "expected_pixel"),
    [("alpha.png", (255, 255, 255)), ("sixteen.png", None), ("cmyk.jpg", None)],
)
def test_conversions_keep_meaning(tmp_path, name, expected_pixel):
    rgb = read_rgb(ODD_BUT_VALID[name](tmp_path / name))
    if name == "alpha.png":  # fully transparent red composites to white
        assert tuple(rgb[0, 0]) == expected_pixel
    elif name == "sixteen.png":  # a 16-bit ramp stays a ramp spanning 0..255
        assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and np.all(np.diff(rgb[0, :, 0].astype(int)) >= 0)
    else:  # CMYK (0, 255, 255, 0) is red
        assert rgb[0, 0, 0] > 200 and rgb[0, 0, 1] < 60


def _truncated(path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


BROKEN = {
    "empty.jpg": (lambda p: p.write_bytes(b"") and p, "empty"),
    "text.jpg": (lambda p: p.write_text("hello, not an image") and p, "not an image"),
    "truncated.png": (_truncated, "corrupt or truncated"),
    "tiny.png": (lambda p: _save(p, Image.new("RGB", (4, 4))), "too small"),
    "missing.png": (lambda p: None, "cannot read"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_images_raise_naming_file_and_problem(tmp_path, name):
    make, problem = BROKEN[name]
    path = tmp_path / name
    make(path)
    with pytest.raises(ImageReadError) as info:
        read_rgb(path)
    assert name in str(info.value) and problem in str(info.value)


def test_huge_image_is_refused_before_decoding(tmp_path):
    path = _save(tmp_path / "big.png", Image.new("L", (300, 300)))
    with pytest.raises(ImageReadError, match="too large"):
        read_rgb(path, max_pixels=300 * 299)


def test_content_id_is_stable_and_file_equal(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc" * 1000)
    assert file_content_id(tmp_path / "a.bin", chunk_bytes=7) == content_id(b"abc" * 1000)
    assert content_id(b"abc") != content_id(b"abd") and len(content_id(b"")) == 32


def _write_set(root, names, size=(20, 30)):
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", size, (i * 20 % 255, 0, 0)).save(root / "images" / name)


def test_ingest_shards_dedupes_and_finds_modalities(tmp_path):
    root = tmp_path / "set"
    _write_set(root, [f"im{i}.png" for i in range(5)])
    (root / "images" / "copy.png").write_bytes((root / "images" / "im0.png").read_bytes())
    (root / "depth").mkdir()
    Image.new("L", (30, 20)).save(root / "depth" / "im1.png")
    (root / "images" / "notes.txt").write_text("ignored")
    result = ingest(root, tmp_path / "manifest", shard_size=2)
    assert result.images == 5 and result.duplicates == 1 and len(result.shard_paths) == 3
    rows = [row for _, shard in read_manifest(tmp_path / "manifest") for row in shard]
    assert len({r["image_id"] for r in rows}) == 5
    by_name = {r["path"].rsplit("/", 1)[1]: r for r in rows}
    assert by_name["im1.png"]["depth_path"].endswith("depth/im1.png")
    assert by_name["im2.png"]["depth_path"] is None
    assert (by_name["im3.png"]["height"], by_name["im3.png"]["width"]) == (30, 20)
    # the first path in sorted order owns the id; the copy is recorded as its duplicate
    assert "im0.png" not in by_name and by_name["copy.png"]["duplicate_paths"][0].endswith("im0.png")


def test_ingest_is_incremental(tmp_path):
    root = tmp_path / "set"
    _write_set(root, [f"im{i}.png" for i in range(5)])
    first = ingest(root, tmp_path / "m", shard_size=2)
    before = {p.name: p.stat().st_mtime_ns for p in first.shard_paths}
    again = ingest(root, tmp_path / "m", shard_size=2)
    assert again.rewritten_shards == 0 and again.new_images == 0
    _write_set(root, ["new.png"], size=(21, 31))
    grown = ingest(root, tmp_path / "m", shard_size=2)
    assert grown.new_images == 1 and grown.rewritten_shards == 1  # fills the last, partial shard only
    after = {p.name: p.stat().st_mtime_ns for p in grown.shard_paths}
    assert after["shard-00000.parquet"] == before["shard-00000.parquet"]
    assert after["shard-00001.parquet"] == before["shard-00001.parquet"]


def test_ingest_rejects_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        ingest(tmp_path / "nope", tmp_path / "m", 4)
