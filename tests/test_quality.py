"""Quality signals on hand-made masks: the mask measurements, the shape terms and the scores.

Shapes from the labelling failures the terms are meant to catch (box-shaped masks, loose and tight
outlines, extra regions, holes, ragged outlines) and from objects they must not punish (thin lines,
rings, bicycles, multi-part ``union`` labels).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.labeling.quality import area_term, fragments_term, measure, quality_score, shape_terms
from engine.masks import (
    boundary_smoothness,
    box_agreement,
    connected_components,
    count_parts,
    mask_area_fraction,
    rectangularity,
    solid_hole_fraction,
)


def _square(size: int, start: int, stop: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[start:stop, start:stop] = True
    return mask


def _disk(shape: tuple[int, int], centre_xy: tuple[int, int], radius: int, thickness: int = -1) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    cv2.circle(out, centre_xy, radius, 1, thickness)
    return out.astype(bool)


TWO_BLOBS = np.zeros((8, 8), bool)
TWO_BLOBS[0:2, 0:2] = TWO_BLOBS[5:8, 5:8] = True

# A 12x8 block whose bottom edge has 1 px teeth on every other column.
COMB = np.zeros((20, 20), bool)
COMB[4:12, 4:16] = True
COMB[12, 4:16:2] = True

# A 22x24 block whose outline pixels are flipped at random: a ragged, noisy outline.
_rng = np.random.default_rng(0)
RAGGED = np.zeros((40, 40), bool)
RAGGED[8:30, 8:32] = True
_band = np.zeros_like(RAGGED)
_band[7:31, 7:33] = True
_band[9:29, 9:31] = False
RAGGED ^= _band & (_rng.random(RAGGED.shape) < 0.5)


@pytest.mark.parametrize(
    "mask, area, components, smoothness",
    [
        (_square(4, 1, 3), 4 / 16, 1, 1.0),  # a square outline: nothing to simplify
        (np.ones((4, 4), bool), 1.0, 1, 1.0),
        (np.zeros((4, 4), bool), 0.0, 0, 0.0),
        (np.eye(4, dtype=bool), 4 / 16, 1, 1.0),  # diagonal pixels are 8-connected: one straight outline
        (TWO_BLOBS, 13 / 64, 2, 1.0),
        (_square(8, 2, 6), 16 / 64, 1, 1.0),
    ],
)
def test_mask_measurements_on_hand_made_masks(mask, area, components, smoothness):
    assert mask_area_fraction(mask) == pytest.approx(area)
    assert connected_components(mask) == components
    assert boundary_smoothness(mask) == pytest.approx(smoothness)


def test_smoothness_drops_with_the_raggedness_of_the_outline():
    assert 0.85 < boundary_smoothness(COMB) < 0.95  # 1 px teeth: a 1.5 px polygon fit cuts them off
    assert boundary_smoothness(RAGGED) < 0.8
    assert boundary_smoothness(_disk((80, 80), (40, 40), 30)) > 0.92


def test_rectangularity_by_hand():
    ell = _square(20, 5, 15)
    ell[5:10, 10:15] = False  # an L: 75 of its rectangle's 100 pixels
    assert rectangularity(ell) == pytest.approx(0.75)
    assert rectangularity(_square(20, 5, 15)) == 1.0
    line = np.zeros((20, 40), bool)
    line[10, 2:38] = True  # a 1 px line fills its rectangle, but it is no box
    assert rectangularity(line) == 0.0
    assert rectangularity(np.zeros((5, 5), bool)) == 0.0


def test_solid_holes_by_hand():
    punched = _square(40, 5, 35)
    punched[10:16, 10:16] = False  # 36 px off-centre in a 30x30 square
    assert solid_hole_fraction(punched) == pytest.approx(36 / 900)
    centred = _square(40, 5, 35)
    centred[17:23, 17:23] = False  # a ring's hole, at the centre of its part
    assert solid_hole_fraction(centred) == 0.0
    frame = np.zeros((30, 40), bool)
    frame[5:25, 5:35] = True
    frame[7:23, 7:13] = frame[7:23, 15:33] = False  # a chair back: thin bars around two gaps
    assert solid_hole_fraction(frame) == 0.0
    open_side = _square(40, 5, 35)
    open_side[10:16, 0:16] = False  # reaches the image border: no hole
    assert solid_hole_fraction(open_side) == 0.0


@pytest.mark.parametrize(
    "boxes, support, reach",
    [
        ([[10, 10, 20, 20]], 1.0, 1.0),  # the box of the 10x10 square
        ([[10, 10, 30, 20]], 1.0, 0.6),  # twice as wide: the mask spans (10 + 2 px slack) / 20
        ([[10, 10, 15, 20]], 0.6, 1.0),  # half as wide, grown 5% to columns 9..15: 6 of 10 columns inside
        ([], 1.0, 1.0),  # no boxes: nothing to compare with
        ([[30, 30, 38, 38]], 0.0, 0.0),  # a box the mask never reaches
    ],
)
def test_box_agreement_by_hand(boxes, support, reach):
    mask = np.zeros((40, 40), bool)
    mask[10:20, 10:20] = True
    assert box_agreement(mask, np.array(boxes, float)) == pytest.approx((support, reach))


def test_parts_are_counted_inside_and_outside_the_boxes():
    two = np.zeros((40, 80), bool)
    two[10:30, 5:25] = two[10:30, 50:70] = True
    assert count_parts(two, np.array([[5, 10, 25, 30], [50, 10, 70, 30]], float)) == (2, 0)  # a union of two boxes
    assert count_parts(two, np.array([[5, 10, 70, 30]], float)) == (2, 0)  # two parts inside one box
    assert count_parts(two, np.array([[5, 10, 25, 30]], float)) == (1, 1)
    assert count_parts(two) == (1, 1)  # no boxes: every part beyond the first is stray
    assert count_parts(np.zeros((5, 5), bool)) == (0, 0)
    speck = two.copy()
    speck[35, 35] = True  # 1 px of 801: below 1% of the mask, not a part
    assert count_parts(speck, np.array([[5, 10, 25, 30], [50, 10, 70, 30]], float)) == (2, 0)


@pytest.mark.parametrize(
    "boxed, stray, box_count, expected",
    [(2, 0, 2, 1.0), (1, 0, 1, 1.0), (2, 0, 1, 1 / 1.5**0.5), (1, 1, 1, 1 / 2**0.5), (3, 2, 1, 1 / 4**0.5), (1, 0, 0, 1.0)],
)
def test_fragments_term(boxed, stray, box_count, expected):
    assert fragments_term(boxed, stray, box_count) == pytest.approx(expected)


def _bicycle() -> np.ndarray:
    mask = np.zeros((200, 300), np.uint8)
    for centre in ((80, 130), (220, 130)):
        cv2.circle(mask, centre, 45, 1, 4)
    for a, b in (((80, 130), (150, 70)), ((150, 70), (220, 130)), ((80, 130), (160, 130)), ((150, 70), (160, 130)),
                 ((150, 70), (140, 50)), ((130, 50), (155, 50))):
        cv2.line(mask, a, b, 1, 4)
    return mask.astype(bool)


def _two_parts() -> np.ndarray:
    return _disk((100, 160), (35, 50), 25) | _disk((100, 160), (120, 50), 25)


GOOD = {
    "thin line": (np.pad(np.ones((2, 80), bool), ((49, 49), (10, 10))), [[10, 48, 90, 52]]),
    "diagonal wire": (cv2.line(np.zeros((100, 100), np.uint8), (10, 10), (90, 70), 1, 2).astype(bool), [[9, 9, 91, 71]]),
    "bicycle": (_bicycle(), [[33, 48, 267, 177]]),
    "ring with hole": (_disk((100, 100), (50, 50), 30) & ~_disk((100, 100), (50, 50), 12), [[20, 20, 81, 81]]),
    "thin ring": (_disk((100, 100), (50, 50), 30, 3), [[18, 18, 83, 83]]),
    "two-part union, two boxes": (_two_parts(), [[10, 25, 61, 76], [95, 25, 146, 76]]),
    "two parts inside one box": (_two_parts(), [[10, 25, 146, 76]]),
    "disk": (_disk((100, 100), (50, 50), 30), [[20, 20, 81, 81]]),
}


@pytest.mark.parametrize("name", list(GOOD))
def test_objects_are_not_punished_for_their_shape(name):
    mask, boxes = GOOD[name]
    terms = shape_terms(mask, np.array(boxes, float))
    assert terms.score >= 0.95, terms


DISK, DISK_BOX = GOOD["disk"]


def _bad(name: str) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25))  # 12 px: 20% of the box
    disk = DISK.astype(np.uint8)
    if name == "box-shaped":
        return _square(100, 20, 81)
    if name == "loose outline":
        return cv2.dilate(disk, kernel).astype(bool)
    if name == "tight outline":
        return cv2.erode(disk, kernel).astype(bool)
    if name == "extra region":
        return DISK | _disk((100, 100), (90, 90), 8)
    if name == "missing part":
        out = DISK.copy()
        out[55:] = False
        return out
    if name == "hole":
        return DISK & ~_disk((100, 100), (62, 42), 9)
    return DISK ^ (_disk((100, 100), (50, 50), 32) & ~_disk((100, 100), (50, 50), 28) & (np.indices((100, 100)).sum(0) % 2 == 0))


@pytest.mark.parametrize(
    "name, term",
    [
        ("box-shaped", "box_shape"),
        ("loose outline", "support"),
        ("tight outline", "reach"),
        ("extra region", "fragments"),
        ("missing part", "reach"),
        ("hole", "holes"),
        ("ragged outline", "smoothness"),
    ],
)
def test_labelling_errors_lower_their_term_and_the_score(name, term):
    clean = shape_terms(DISK, np.array(DISK_BOX, float))
    terms = shape_terms(_bad(name), np.array(DISK_BOX, float))
    assert getattr(terms, term) < 0.9 * getattr(clean, term), terms
    assert terms.score < clean.score


def test_empty_and_full_masks_score_zero():
    assert shape_terms(np.zeros((10, 10), bool)).score == 0.0
    assert shape_terms(np.ones((10, 10), bool)).score == 0.0


def test_boxes_come_as_any_sequence_of_four_numbers():
    as_lists = shape_terms(DISK, [[20, 20, 81, 81]])
    as_arrays = shape_terms(DISK, np.array([np.array([20, 20, 81, 81], np.float32)], dtype=object))
    assert as_lists == as_arrays == shape_terms(DISK, np.array(DISK_BOX, float))


@pytest.mark.parametrize(
    "frac, expected", [(0.0, 0.0), (0.005, 0.5), (0.01, 1.0), (0.5, 1.0), (0.8, 1.0), (0.9, 0.5), (1.0, 0.0)]
)
def test_area_term(frac, expected):
    assert area_term(frac) == pytest.approx(expected)


@pytest.mark.parametrize(
    "args, expected",
    [
        ((1.0, 1.0, 1.0, 1.0), 1.0),
        ((0.125, 1.0, 1.0, 1.0), 0.5 ** 0.5),  # confidence 0.125 ** (1/3) = 0.5, then sqrt(0.5 * 1)
        ((1.0, 1.0, 1.0, 0.25), 0.5),
        ((0.8, 1.3, 0.9, 0.5), ((0.8 * 1.0 * 0.9) ** (1 / 3) * 0.5) ** 0.5),  # IoU clipped to 1
        ((0.0, 1.0, 1.0, 1.0), 0.0),  # no grounding confidence
        ((1.0, -0.2, 1.0, 1.0), 0.0),  # negative predicted IoU clips to 0
        ((1.0, 1.0, 0.0, 1.0), 0.0),  # unstable
        ((1.0, 1.0, 1.0, 0.0), 0.0),  # empty or full-frame mask
    ],
)
def test_quality_score_formula_and_zero_cases(args, expected):
    assert quality_score(*args) == pytest.approx(expected)


def test_measure_uses_the_boxes_and_averages_per_box_values():
    boxes = np.array([[20, 20, 81, 81], [30, 30, 70, 70]], float)
    signals = measure(DISK, np.array([0.4, 0.7]), np.array([0.9, 0.7]), np.array([1.0, 0.8]), boxes)
    assert (signals.best_box_score, signals.box_count, signals.components) == (pytest.approx(0.7), 2, 1)
    assert (signals.sam_pred_iou, signals.stability_score) == pytest.approx((0.8, 0.9))
    assert signals.shape_score == pytest.approx(shape_terms(DISK, boxes).score)
    assert signals.quality_score == pytest.approx(quality_score(0.7, 0.8, 0.9, signals.shape_score))
    leaked = measure(DISK, np.array([0.7]), np.array([0.8]), np.array([0.9]), np.array([[20, 20, 50, 81]], float))
    assert leaked.shape_score < signals.shape_score  # half the disk outside its only box
