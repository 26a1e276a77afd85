"""SOD metrics on hand-made masks whose values follow from the definitions (PySODMetrics)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.metrics import METRIC_KEYS, EvalItem, EvaluateParams, SODMetrics, evaluate_items
from engine.metrics.io import resize_to, to_gray_u8

F_AT_ZERO = 1.3 * 0.5 / (0.3 * 0.5 + 1)  # threshold 0 marks every pixel foreground: P = 0.5, R = 1


def top_rows(rows: int, size: int = 8) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[:rows] = 255
    return mask


GT = top_rows(4)  # 8x8, upper half foreground


def score(pred: np.ndarray, gt: np.ndarray = GT):
    acc = SODMetrics()
    per_image = acc.step(pred, gt)
    return per_image, acc.results()


@pytest.mark.parametrize(
    ("name", "pred", "expected"),
    [
        ("perfect", GT, {"MAE": 0.0, "Smeasure": 1.0, "wFmeasure": 1.0, "adpFm": 1.0, "maxFm": 1.0,
                         "meanFm": (F_AT_ZERO + 255) / 256, "adpEm": 64 / 63, "maxEm": 64 / 63}),
        ("inverted", 255 - GT, {"MAE": 1.0, "adpFm": 0.0, "maxFm": F_AT_ZERO, "adpEm": 0.0}),
        # upper quarter only: 16 of 32 foreground pixels missed; adaptive threshold 2 * 0.25 keeps it
        ("half right", top_rows(2), {"MAE": 0.25, "adpFm": 1.3 * 1 * 0.5 / (0.3 * 1 + 0.5), "maxFm": 0.8125}),
        # an empty map: MAE is the foreground fraction; F only at threshold 0 (everything foreground)
        ("empty", np.zeros_like(GT), {"MAE": 0.5, "maxFm": F_AT_ZERO, "meanFm": F_AT_ZERO / 256}),
        # min-max normalisation per image: a dim copy of the truth is perfect
        ("dim perfect", (GT // 255 * 100).astype(np.uint8), {"MAE": 0.0, "adpFm": 1.0, "Smeasure": 1.0}),
    ],
)
def test_measures_on_hand_made_masks(name, pred, expected):
    _, result = score(pred)
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-9), (name, key)


def test_inverted_mask_scores_low_on_structure():
    _, result = score(255 - GT)
    assert result.metrics["Smeasure"] < 0.1
    assert result.metrics["meanEm"] < 0.01


def test_dataset_scores_are_per_image_averages():
    acc = SODMetrics()
    small_gt = top_rows(2, size=4)
    singles = [acc.step(GT, GT), acc.step(255 - GT, GT), acc.step(np.zeros((4, 4), np.uint8), small_gt)]
    result = acc.results()
    assert result.images == 3
    assert [s["MAE"] for s in singles] == pytest.approx([0.0, 1.0, 0.5])
    assert result.metrics["MAE"] == pytest.approx(0.5)  # per image, not pooled over pixels (would be 80/144)
    assert result.metrics["adpFm"] == pytest.approx(np.mean([s["adpFm"] for s in singles]))


def test_curves_run_over_ascending_thresholds():
    # a ramp prediction: higher thresholds keep fewer pixels, so recall falls as the threshold rises
    ramp = np.repeat(np.linspace(255, 0, 8).astype(np.uint8)[:, None], 8, axis=1)
    _, result = score(ramp)
    for curve in (result.precision, result.recall, result.fmeasure, result.emeasure):
        assert curve.shape == (256,)
    assert result.recall[0] == pytest.approx(1.0)
    assert np.all(np.diff(result.recall) <= 1e-12)
    assert result.metrics["maxFm"] == pytest.approx(result.fmeasure.max())
    assert result.metrics["meanEm"] == pytest.approx(result.emeasure.mean())
    assert set(result.metrics) == set(METRIC_KEYS)


@pytest.mark.parametrize(
    ("pred", "gt", "error"),
    [
        (GT.astype(np.float32), GT, TypeError),
        (GT, GT[:4], ValueError),
        (np.stack([GT] * 3, axis=-1), GT, TypeError),
    ],
)
def test_step_rejects_bad_inputs(pred, gt, error):
    with pytest.raises(error):
        SODMetrics().step(pred, gt)


def test_results_without_images_is_an_error():
    with pytest.raises(ValueError, match="no image"):
        SODMetrics().results()


def test_resize_to_ground_truth_size():
    big = np.kron(GT, np.ones((2, 2), np.uint8))  # 16x16 copy of the truth
    assert np.array_equal(resize_to(big, GT.shape), GT)
    wide = resize_to(GT, (8, 20))
    assert wide.shape == (8, 20) and wide.dtype == np.uint8
    assert resize_to(GT, GT.shape) is GT


def test_evaluate_items_resizes_and_counts(tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "gt.png"), GT)
    big = np.kron(GT, np.ones((2, 2), np.uint8))
    report = evaluate_items("d", [EvalItem("a", tmp_path / "gt.png", lambda: big, "big.png")])
    assert report.resized == 1
    assert report.scores.metrics["MAE"] == pytest.approx(0.0)
    assert report.scores.metrics["maxFm"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([[True, False]]), [[255, 0]]),
        (np.array([[0.0, 1.0]]), [[0, 255]]),
        (np.array([[7, 9]], np.uint8), [[7, 9]]),
    ],
)
def test_to_gray_u8(array, expected):
    assert to_gray_u8(array).tolist() == expected


@pytest.mark.parametrize("array", [np.array([[1.5, 0.0]]), np.zeros((2, 2, 3), np.uint8), np.array([[1, 2]], np.int64)])
def test_to_gray_u8_rejects(array):
    with pytest.raises((ValueError, TypeError)):
        to_gray_u8(array)


def test_params_validate():
    with pytest.raises(ValueError, match="missing"):
        EvaluateParams(missing="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="worst"):
        EvaluateParams(worst=-1)
