"""params.yaml parsing: typed, validated, unknown keys rejected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.params import LabelParams, ModelSpec, load_params, load_section

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_file_loads():
    params = load_params(REPO / "params.yaml")
    assert params.models.profile == "tiny"
    assert params.models.specs()["segmenter"] == ModelSpec("sam", "tiny")
    assert params.models.specs("large")["captioner"].source == "Salesforce/blip-image-captioning-large"
    assert params.sample.size_hw == (192, 256)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("label:\n  box_thresold: 0.3\n", "unknown keys \\['box_thresold'\\]"),
        ("label:\n  box_threshold: 1.5\n", "box_threshold must be in"),
        ("label:\n  box_policy: all\n", "box_policy"),
        ("ingest:\n  shard_size: 0\n", "shard_size must be >= 1"),
        ("label: [1, 2]\n", "expected a mapping"),
        ("label: {a: [\n", "not valid YAML"),
    ],
)
def test_bad_params_fail_with_a_clear_message(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_params(path)


def test_missing_file_and_unknown_profile(tmp_path):
    with pytest.raises(ValueError, match="parameters file not found"):
        load_params(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="unknown model profile 'huge'"):
        load_params(None, {"models": {"profile": "huge"}}).models.specs()


def test_overrides_and_result_params():
    params = load_params(None, {"label": {"batch_size": 3, "box_threshold": 0.5}})
    assert params.label.batch_size == 3 and params.label.box_threshold == 0.5
    assert "batch_size" not in params.label.result_params()
    assert LabelParams(batch_size=1).result_params() == LabelParams(batch_size=64).result_params()


@dataclass(frozen=True)
class _Other:
    lr: float = 0.1
    epochs: int = 2


def test_load_section_for_stage_owned_params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("other:\n  lr: 0.5\nlabel:\n  batch_size: 2\n")
    assert load_section(path, "other", _Other) == _Other(lr=0.5, epochs=2)
    assert load_section(path, "absent", _Other, {"epochs": 9}) == _Other(epochs=9)
    assert load_params(path).label.batch_size == 2  # other sections are ignored by load_params
