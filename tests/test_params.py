"""params.yaml parsing: typed, validated, unknown keys rejected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.params import KNOWN_SECTIONS, LabelParams, ModelSpec, check_params_file, load_params, load_section

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
        # typos: an unknown section or key is never silently ignored
        ("lable:\n  num_beams: 2\n", "params.yaml: unknown section 'lable' (did you mean 'label'?)"),
        ("label:\n  box_thresold: 0.3\n", "params.yaml: label: unknown keys ['box_thresold'] (did you mean 'box_threshold'?)"),
        # wrong types name the key and what came
        ("label:\n  box_threshold: high\n", "params.yaml: label.box_threshold: expected a number, got 'high' (str)"),
        ("label:\n  max_boxes: 2.5\n", "params.yaml: label.max_boxes: expected a whole number, got 2.5 (float)"),
        ("label:\n  num_beams: true\n", "params.yaml: label.num_beams: expected a whole number, got True (bool)"),
        ("label:\n  caption_prompt: 3\n", "params.yaml: label.caption_prompt: expected a string, got 3 (int)"),
        ("sample:\n  with_depth: 1\n", "params.yaml: sample.with_depth: expected true or false, got 1 (int)"),
        ("sample:\n  size_hw: [192]\n", "params.yaml: sample.size_hw: expected a list of 2 items, got 1"),
        ("models:\n  profiles:\n    mine:\n      captioner: 3\n", "params.yaml: models.profiles.mine.captioner: expected a string"),
        ("label: [1, 2]\n", "params.yaml: label: expected a mapping of keys, got [1, 2] (list)"),
        # out of range
        ("label:\n  num_beams: 0\n", "params.yaml: label.num_beams: must be >= 1, got 0"),
        ("label:\n  box_threshold: -0.1\n", "params.yaml: label.box_threshold: must be >= 0 and <= 1, got -0.1"),
        ("label:\n  box_threshold: 1.5\n", "params.yaml: label.box_threshold: must be >= 0 and <= 1, got 1.5"),
        ("label:\n  nms_iou: 0\n", "params.yaml: label.nms_iou: must be > 0 and <= 1, got 0.0"),
        ("label:\n  box_policy: all\n", "params.yaml: label.box_policy: must be one of 'best', 'union'; got 'all' (str)"),
        ("ingest:\n  shard_size: 0\n", "params.yaml: ingest.shard_size: must be >= 1, got 0"),
        ("sample:\n  size_hw: [192, 8]\n", "params.yaml: sample.size_hw[1]: must be >= 16, got 8"),
        ("models:\n  device: gpu\n", "params.yaml: models.device: must be auto, cpu, cuda or cuda:N; got 'gpu'"),
        ("label: {a: [\n", "not valid YAML"),
    ],
)
def test_bad_params_fail_naming_file_section_and_key(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_params(path)
    assert message in str(info.value) and str(tmp_path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("refine:\n  sce:\n    epochs: four\n", "refine.sce.epochs: expected a whole number, got 'four' (str)"),
        ("refine:\n  spr:\n    weights: [0.5, 0.5]\n", "refine.spr.weights: expected a list of 3 items, got 2"),
        ("train:\n  lr: -1\n", "train params: lr must be > 0"),
        ("train:\n  epochs: 2.5\n", "train.epochs: expected a whole number, got 2.5 (float)"),
        ("evaluate:\n  worst: -1\n", "evaluate params: worst must be >= 0"),
        ("annotate:\n  fraction: lots\n", "annotate.fraction: expected a number, got 'lots' (str)"),
        ("finetune:\n  epochs: 0\n", "finetune params: epochs must be >= 1"),
        ("train_presets:\n  fast:\n    epochz: 3\n", "train_presets.fast: unknown keys ['epochz'] (did you mean 'epochs'?)"),
        ("train_presets:\n  fast: 3\n", "train_presets.fast: expected a mapping of train keys, got 3"),
    ],
)
def test_every_section_is_checked_by_check_params_file(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    load_params(path)  # the labelling sections are fine: sections of other stages are their stages' business...
    with pytest.raises(ValueError) as info:  # ...and a whole-pipeline check finds them before the first stage
        check_params_file(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_repo_params_file_passes_the_full_check():
    built = check_params_file(REPO / "params.yaml")
    assert set(KNOWN_SECTIONS) <= set(built)
    assert {"train_presets.cpu-real", "train_presets.gpu-real"} <= set(built)  # presets are checked as train


def test_yaml_quirks_and_conversions(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 5e-5\nsample:\n  size_hw: [64, 96]\nlabel:\n  box_threshold: 1\n")
    assert check_params_file(path)["train"].lr == 5e-5  # PyYAML reads 5e-5 as a string: accepted as a number
    params = load_params(path)
    assert params.sample.size_hw == (64, 96) and isinstance(params.label.box_threshold, float)


def test_overrides_are_checked_and_named_as_overrides():
    with pytest.raises(ValueError, match=r"^ingest.shard_size \(override\): must be >= 1, got 0$"):
        load_params(None, {"ingest": {"shard_size": 0}})
    with pytest.raises(ValueError, match="unknown parameter section 'lable'"):
        load_params(None, {"lable": {"num_beams": 2}})
    with pytest.raises(ValueError, match=r"^num_beams: must be >= 1, got 0$"):
        LabelParams(num_beams=0)  # direct construction (e.g. inside a Prefect task) is checked too


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
    assert load_section(path, "other", _Other, {"epochs": 9}) == _Other(lr=0.5, epochs=9)
    with pytest.raises(ValueError, match=r"other.epochs \(override\): expected a whole number, got 'x'"):
        load_section(path, "other", _Other, {"epochs": "x"})
    with pytest.raises(ValueError, match="unknown section 'other'"):  # not a registered section: a typo for everyone else
        load_params(path)
