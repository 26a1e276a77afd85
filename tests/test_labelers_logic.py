"""Labelling logic on hand-made inputs: phrases, NMS, box policies, thresholds (quality signals: test_quality.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.labeling.boxes import box_iou, nms, select_boxes
from engine.labeling.phrase import Phrase, extract_phrase
from engine.models.outputs import Detections
from engine.params import LabelParams


@pytest.mark.parametrize(
    "caption, phrase, category",
    [
        ("a photo of a red car parked on a street", "red car", "car"),
        ("a close up of a red car parked on a street", "red car", "car"),
        ("arafed dog sitting on a couch", "dog", "dog"),
        ("there are two cats on a bed", "cats", "cat"),
        ("a black and white photo of a cat", "cat", "cat"),
        ("a black and white cat sitting on a chair", "black and white cat", "cat"),
        ("a man riding a horse", "man", "man"),
        ("a woman is holding an umbrella", "woman", "woman"),
        ("an image of a bird flying over water", "bird", "bird"),
        ("a picture of the eiffel tower", "eiffel tower", "tower"),
        ("two dogs playing in the grass", "dogs", "dog"),
        ("a red striped shirt", "red striped shirt", "shirt"),
        ("A Photo Of A Red-Car.", "red car", "car"),
        ("[unused12] a vase with flowers in it", "vase", "vase"),
        ("", "", ""),
        ("!!! ???", "", ""),
        ("a photo of", "", ""),
        ("[unused3] [unused4]", "", ""),
        ("of the", "", ""),
    ],
)
def test_phrase_extraction(caption, phrase, category):
    result = extract_phrase(caption)
    assert (result.text, result.category) == (phrase, category)


def test_phrase_keeps_at_most_max_words_ending_at_the_head_noun():
    assert extract_phrase("a big old rusty red metal car", max_words=3) == Phrase("red metal car", "car")


# Two overlapping boxes (IoU 0.6806), a disjoint one, and one inside the first (IoU 0.25).
BOXES = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 5, 5]], np.float32)
SCORES = np.array([0.9, 0.8, 0.7, 0.95], np.float32)


def test_box_iou_by_hand():
    iou = box_iou(torch.tensor(BOXES[:2]), torch.tensor(BOXES[1:3]))
    assert iou[0, 0].item() == pytest.approx(81 / 119)  # inter 9x9, union 100 + 100 - 81
    assert iou[0, 1].item() == 0.0 and iou[1, 0].item() == 1.0


@pytest.mark.parametrize(
    "threshold, kept",
    [
        (0.5, [3, 0, 2]),  # box 1 overlaps box 0 by 0.68 -> suppressed; box 3 (IoU 0.25) survives
        (0.7, [3, 0, 1, 2]),  # nothing overlaps that much
        (0.2, [3, 1, 2]),  # box 3 suppresses box 0 (0.25); box 1 only overlaps box 3 by 16/125
        (1.0, [3, 0, 1, 2]),
    ],
)
def test_nms_on_hand_made_boxes(threshold, kept):
    assert nms(BOXES, SCORES, threshold).tolist() == kept


def test_nms_empty_and_ties_keep_first():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []
    same = np.array([[0, 0, 4, 4], [0, 0, 4, 4]], np.float32)
    assert nms(same, np.array([0.5, 0.5], np.float32), 0.5).tolist() == [0]


def _detections(labels=("red car", "car", "tree", "red car")) -> Detections:
    return Detections(BOXES.copy(), SCORES.copy(), list(labels))


@pytest.mark.parametrize(
    "policy, category, max_boxes, expected",
    [
        ("best", "car", 5, [3]),
        ("union", "car", 5, [3, 0]),  # after NMS (3, 0, 2): the two that name "car"
        ("union", "car", 1, [3]),
        ("union", "", 5, [3, 0, 2]),  # no category: every kept box
        ("union", "boat", 5, [3, 0, 2]),  # none names the category: every kept box
        ("union", "tree", 5, [2]),
    ],
)
def test_box_policies(policy, category, max_boxes, expected):
    selected = select_boxes(_detections(), nms_iou=0.5, max_boxes=max_boxes, policy=policy, category=category)
    assert [BOXES.tolist().index(b) for b in selected.boxes_xyxy.tolist()] == expected


def test_degenerate_boxes_are_dropped_and_unknown_policy_refused():
    boxes = np.array([[5, 5, 5, 9], [0, 0, 4, 4], [3, 3, 2, 8]], np.float32)
    selected = select_boxes(Detections(boxes, np.array([0.9, 0.5, 0.8], np.float32), ["a", "a", "a"]), 0.5, 5, "union")
    assert selected.boxes_xyxy.tolist() == [[0, 0, 4, 4]]
    with pytest.raises(ValueError, match="unknown box policy 'all'"):
        select_boxes(_detections(), 0.5, 5, "all")
    assert len(select_boxes(Detections.empty(), 0.5, 5, "best")) == 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"box_threshold": 1.5}, r"box_threshold: must be >= 0 and <= 1, got 1.5"),
        ({"text_threshold": -0.1}, r"text_threshold: must be >= 0 and <= 1, got -0.1"),
        ({"nms_iou": 0.0}, r"nms_iou: must be > 0 and <= 1, got 0.0"),
        ({"max_boxes": 0}, r"max_boxes: must be >= 1, got 0"),
        ({"box_policy": "all"}, r"box_policy: must be one of 'best', 'union'"),
        ({"batch_size": 0}, r"batch_size: must be >= 1, got 0"),
    ],
)
def test_label_params_refuse_bad_thresholds(overrides, message):
    with pytest.raises(ValueError, match=message):
        LabelParams(**overrides)
