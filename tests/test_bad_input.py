"""Bad input never stops a run: decompression bombs, read errors (EIO), odd file kinds, empty folders."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
from bad_files import huge_jpeg, png_bomb
from PIL import Image

from engine.images import ImageReadError, read_rgb
from engine.images.io import PIL_PIXEL_LIMIT, read_size_hw
from engine.images.manifest import check_has_images, ingest, read_manifest, scan_folder
from engine.labeling.shard import decode
from engine.params import IngestParams
from engine.storage import read_fingerprint


def _image(path: Path, seed: int = 0) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)
    return path


def _eio(*args, **kwargs):
    raise OSError(errno.EIO, "Input/output error")


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (png_bomb, "image is too large to decode safely (Image size (900000000 pixels)"),
        (huge_jpeg, "image is too large to decode safely (Image size (182000000 pixels)"),
    ],
)
@pytest.mark.parametrize("reader", [read_rgb, read_size_hw])
def test_decompression_bombs_are_image_errors_naming_the_file(tmp_path, make, fragment, reader):
    path = make(tmp_path / "big.img")
    with pytest.raises(ImageReadError) as info:  # not PIL's DecompressionBombError, which stopped runs
        reader(path)
    assert str(info.value).startswith(f"{path}: ") and fragment in str(info.value)


def test_max_pixels_limit_names_the_parameter(tmp_path):
    path = _image(tmp_path / "a.png")
    with pytest.raises(ImageReadError, match=r"a.png: image is too large \(50x40 = 0.0 Mpx, limit 0.0 Mpx: ingest.max_pixels\)"):
        read_rgb(path, max_pixels=1999)
    with pytest.raises(ImageReadError, match="ingest.max_pixels"):
        read_size_hw(path, max_pixels=1999)
    assert read_rgb(path, max_pixels=2000).shape == (40, 50, 3)
    assert IngestParams().max_pixels == PIL_PIXEL_LIMIT == 178_956_970
    with pytest.raises(ValueError, match="max_pixels: must be >= 1 and <= 1.78957e"):
        IngestParams(max_pixels=PIL_PIXEL_LIMIT + 1)


@pytest.mark.parametrize("reader", [read_rgb, read_size_hw])
def test_read_errors_are_image_errors_naming_the_file(tmp_path, monkeypatch, reader):
    path = _image(tmp_path / "disk.png")
    monkeypatch.setattr("engine.images.io.Image.open", _eio)
    with pytest.raises(ImageReadError) as info:
        reader(path)
    assert str(info.value) == f"{path}: cannot read file ([Errno 5] Input/output error)"


def test_decode_turns_every_failure_into_an_error_item(tmp_path, monkeypatch):
    row = {"image_id": "a", "path": str(_image(tmp_path / "a.png")), "header_error": None}
    assert decode(row).error is None and decode(row).rgb.shape == (40, 50, 3)
    assert decode({**row, "header_error": "a.png: image is too large"}).error == "a.png: image is too large"
    monkeypatch.setattr("engine.images.io.Image.open", _eio)
    assert decode(row).error == f"{row['path']}: cannot read file ([Errno 5] Input/output error)"


def _odd_folder(root: Path) -> dict[str, str]:
    """Images plus every odd kind of entry; returns ``{name: expected skip reason fragment}``."""
    root.mkdir()
    for index in range(2):
        _image(root / f"ok{index}.png", index)
    (root / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42")
    (root / "photo.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (root / "notes.txt").write_text("not an image")
    os.symlink("loop2.jpg", root / "loop1.jpg")
    os.symlink("loop1.jpg", root / "loop2.jpg")
    os.symlink("gone.png", root / "dangling.png")
    os.mkfifo(root / "pipe.jpg")
    (root / "elsewhere").mkdir()
    os.symlink(root / "elsewhere", root / "linked_folder")
    (root / ".hidden.png").write_bytes(b"")  # hidden entries are left out without a word
    (root / "masks").mkdir()  # so are mask and modality folders
    _image(root / "masks" / "ok0.png")
    return {
        "clip.mp4": "not an image (.mp4)", "photo.heic": "unsupported image format (.heic)",
        "notes.txt": "not an image (.txt)", "loop1.jpg": "symlink loop", "loop2.jpg": "symlink loop",
        "dangling.png": "broken symlink (target gone.png missing)", "pipe.jpg": "not a regular file (FIFO)",
        "linked_folder": "symlink to a folder (not followed)",
    }


def test_scan_reports_every_file_it_passes_over(tmp_path):
    expected = _odd_folder(tmp_path / "set")
    scan = scan_folder(tmp_path / "set")
    assert [p.name for p in scan.images] == ["ok0.png", "ok1.png"]
    reasons = {Path(s.path).name: s.reason for s in scan.skipped}
    assert set(reasons) == set(expected)
    for name, fragment in expected.items():
        assert fragment in reasons[name], (name, reasons[name])


def test_ingest_keeps_unreadable_and_huge_images_as_error_rows(tmp_path, monkeypatch):
    import engine.images.manifest as manifest

    expected = _odd_folder(tmp_path / "set")
    png_bomb(tmp_path / "set" / "bomb.png")
    huge_jpeg(tmp_path / "set" / "panorama.jpg")
    _image(tmp_path / "set" / "bad_disk.png", seed=7)
    real_hash = manifest.file_content_id
    monkeypatch.setattr(manifest, "file_content_id", lambda p: _eio() if Path(p).name == "bad_disk.png" else real_hash(p))
    result = ingest(tmp_path / "set", tmp_path / "m", shard_size=4)
    assert (result.images, result.unreadable) == (5, 3) and len(result.skipped) == len(expected)
    rows = {Path(r["path"]).name: r for _, shard in read_manifest(tmp_path / "m") for r in shard}
    assert rows["bad_disk.png"]["header_error"] == (
        f"{tmp_path / 'set' / 'bad_disk.png'}: cannot read file ([Errno 5] Input/output error)")
    assert "bomb.png: image is too large" in rows["bomb.png"]["header_error"]
    assert "panorama.jpg: image is too large" in rows["panorama.jpg"]["header_error"]
    assert rows["ok0.png"]["header_error"] is None
    unreadable_fp = read_fingerprint(result.shard_paths[0])

    monkeypatch.setattr(manifest, "file_content_id", real_hash)  # the disk is fine again
    again = ingest(tmp_path / "set", tmp_path / "m", shard_size=4)
    rows = {Path(r["path"]).name: r for _, shard in read_manifest(tmp_path / "m") for r in shard}
    assert again.unreadable == 2 and rows["bad_disk.png"]["header_error"] is None
    assert rows["bad_disk.png"]["image_id"] == real_hash(tmp_path / "set" / "bad_disk.png")
    assert read_fingerprint(again.shard_paths[0]) != unreadable_fp  # its shard is labelled again


def test_lowering_max_pixels_marks_and_relabels_images(tmp_path):
    (tmp_path / "set").mkdir()
    _image(tmp_path / "set" / "a.png")
    first = read_fingerprint(ingest(tmp_path / "set", tmp_path / "m", shard_size=4).shard_paths[0])
    smaller = ingest(tmp_path / "set", tmp_path / "m", shard_size=4, max_pixels=1000)
    row = read_manifest(tmp_path / "m")[0][1][0]
    assert smaller.unreadable == 1 and "ingest.max_pixels" in row["header_error"]
    assert read_fingerprint(smaller.shard_paths[0]) != first  # the shard is labelled again
    ingest(tmp_path / "set", tmp_path / "m", shard_size=4)  # back to the default: labelled as before
    assert read_fingerprint(smaller.shard_paths[0]) == first


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no images found (looked for .bmp, .gif"),
        ({"clip.mp4": b"x", "notes.txt": b"y"},
         "2 other files skipped (clip.mp4: not an image (.mp4); notes.txt: not an image (.txt))"),
    ],
)
def test_a_folder_without_images_is_an_error(tmp_path, files, message):
    (tmp_path / "set").mkdir()
    for name, data in files.items():
        (tmp_path / "set" / name).write_bytes(data)
    for call in (lambda: ingest(tmp_path / "set", tmp_path / "m", 4), lambda: check_has_images(tmp_path / "set")):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value).startswith(f"{tmp_path / 'set'}: ") and message in str(info.value)


def test_a_corrupt_manifest_shard_is_rebuilt_in_place(tmp_path):
    (tmp_path / "set").mkdir()
    for index in range(6):
        _image(tmp_path / "set" / f"im{index}.png", index)
    first = ingest(tmp_path / "set", tmp_path / "m", shard_size=2)
    before = {p.name: read_fingerprint(p) for p in first.shard_paths}
    victim = first.shard_paths[1]
    victim.write_bytes(victim.read_bytes()[:60])
    again = ingest(tmp_path / "set", tmp_path / "m", shard_size=2)
    assert {p.name: read_fingerprint(p) for p in again.shard_paths} == before  # same ids in the same shards
