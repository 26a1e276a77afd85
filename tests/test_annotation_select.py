"""Choosing what to annotate: embeddings, spread picks, rounds that never repeat, worst quality first."""

from __future__ import annotations

import numpy as np
import pytest
from annotation_support import make_labelled_workdir

from engine.annotations import ImageSet, SelectParams, read_rounds, select_round
from engine.annotations.select import image_features, spread_pick
from engine.catalog import Workdir


def test_spread_pick_takes_one_image_per_cluster():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([c + rng.normal(0, 0.1, size=(20, 2)) for c in centres])
    picked, _ = spread_pick(points, 3, seed=0)
    assert sorted(i // 20 for i in picked) == [0, 1, 2]


def test_spread_pick_returns_everything_when_asked_for_more():
    assert spread_pick(np.eye(3), 5)[0] == [0, 1, 2]


def test_image_features_are_a_histogram_plus_layout(sample_set, tmp_path):
    feats = image_features(sample_set / "images" / "sample_0000.jpg")
    assert feats.shape == (64 + 48,) and feats.dtype == np.float32
    assert feats[:64].sum() == pytest.approx(1.0)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    assert image_features(bad) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"fraction": 0.0}, "fraction"), ({"count": 0}, "count"), ({"strategy": "random"}, "strategy"),
     ({"max_candidates": 0}, "max_candidates")],
)
def test_select_params_are_validated(fields, message):
    with pytest.raises(ValueError, match=message):
        SelectParams(**fields)


def test_rounds_never_pick_an_image_twice(sample_set, tmp_path):
    images = ImageSet.load(sample_set)
    params = SelectParams(fraction=0.25)
    path, first = select_round(tmp_path, images, params)
    assert path.name == "round-0001.parquet" and len(first) == 3  # ceil(0.25 * 12)
    _, second = select_round(tmp_path, images, params, exclude={images.ids()[0]})
    taken = [r["image_id"] for r in first + second]
    assert len(set(taken)) == 6 and images.ids()[0] not in {r["image_id"] for r in second}
    assert [r["round"] for r in read_rounds(Workdir.at(tmp_path))] == [1] * 3 + [2] * 3
    for _ in range(2):
        select_round(tmp_path, images, params)
    assert select_round(tmp_path, images, params) == (None, [])  # 12 images, 4 rounds of 3


def test_worst_quality_round_starts_with_the_worst_labels(sample_set, tmp_path):
    wd, rows = make_labelled_workdir(sample_set, tmp_path / "work")
    images = ImageSet.load(sample_set, wd)
    _, picked = select_round(wd, images, SelectParams(count=3, strategy="worst_quality"))
    ids = [r["image_id"] for r in rows]
    assert [r["image_id"] for r in picked] == [ids[11], ids[10], ids[9]]  # no_object first, then lowest quality


def test_worst_quality_needs_a_labelling_run(sample_set, tmp_path):
    with pytest.raises(ValueError, match="no labelling run"):
        select_round(tmp_path, ImageSet.load(sample_set), SelectParams(strategy="worst_quality"))


def test_image_set_reuses_manifest_ids_and_refuses_unknown_ids(sample_set, tmp_path):
    wd, rows = make_labelled_workdir(sample_set, tmp_path / "work")
    images = ImageSet.load(sample_set, wd)
    assert images.ids() == [r["image_id"] for r in rows]
    assert images.by_name("sample_0003.jpg").image_id == rows[3]["image_id"]
    with pytest.raises(KeyError):
        images.get("f" * 32)
    with pytest.raises(ValueError):
        images.get("../../etc/passwd")
