"""The generated sample set: deterministic, with true masks that match the salient object."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from engine.datasets import generate_sample_set


def test_same_seed_same_bytes(tmp_path):
    generate_sample_set(tmp_path / "a", count=3, size_hw=(48, 64), seed=7)
    generate_sample_set(tmp_path / "b", count=3, size_hw=(48, 64), seed=7)
    for sub in ("images", "masks", "depth"):
        for path in sorted((tmp_path / "a" / sub).iterdir()):
            assert path.read_bytes() == (tmp_path / "b" / sub / path.name).read_bytes()


def test_masks_mark_the_object(tmp_path):
    items = generate_sample_set(tmp_path, count=5, size_hw=(64, 80), seed=1)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert [i["shape"] for i in meta["items"]] == [i.shape for i in items]
    for item in items:
        mask = np.asarray(Image.open(tmp_path / "masks" / f"{item.stem}.png")) > 128
        image = np.asarray(Image.open(tmp_path / "images" / f"{item.stem}.jpg")).astype(float)
        depth = np.asarray(Image.open(tmp_path / "depth" / f"{item.stem}.png")).astype(float)
        assert 0.02 < mask.mean() < 0.6
        inside, outside = image[mask].mean(0), image[~mask].mean(0)
        assert np.abs(inside - outside).max() > 20 or item.colour in ("white", "black")
        assert depth[mask].mean() > depth[~mask].mean() + 40  # the object is closer


@pytest.mark.parametrize(("kwargs", "message"), [({"count": 0}, "count"), ({"size_hw": (8, 8)}, "size_hw")])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_sample_set(tmp_path, **kwargs)
