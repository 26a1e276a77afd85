"""The refinement gate: held-out split, the probe with a detector that knows the objects (a fake, in
tests only) and with one that does not, and the decision table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.refine.data import resize_mask
from engine.refine.gate import ProbeResult, ProbeSample, decide, holdout_ids, probe_sample, summarize_probe
from engine.refine.par import PixelAdaptiveRefiner
from engine.refine.params import GateParams, PARParams, UpdateParams

SIZE = 32


def test_holdout_is_a_stable_fraction_and_respects_the_cap():
    ids = [f"img{i:04d}" for i in range(2000)]
    held = holdout_ids(ids, 0.2, seed=0)
    assert 340 < len(held) < 460 and held == holdout_ids(reversed(ids), 0.2, seed=0)
    assert holdout_ids(ids, 0.2, seed=1) != held
    assert len(holdout_ids(ids, 0.2, seed=0, cap=50)) == 50 and holdout_ids(ids, 0.2, cap=50) <= held


def _scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A 96 x 128 photo-like image: textured background, one bright ellipse-ish object; its true mask."""
    height, width = 96, 128
    ys, xs = np.mgrid[0:height, 0:width]
    cy, cx = rng.uniform(30, 66), rng.uniform(40, 88)
    ry, rx = rng.uniform(14, 26), rng.uniform(16, 30)
    truth = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 < 1
    image = rng.integers(20, 90, (height, width, 3)).astype(np.uint8)
    image[truth] = rng.integers(170, 240, 3)
    return image, truth


def _sample(image: np.ndarray, source: np.ndarray, probs: np.ndarray) -> ProbeSample:
    image_t = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    image_s = torch.nn.functional.interpolate(image_t, size=(SIZE, SIZE), mode="area")
    r_pri = PixelAdaptiveRefiner()(image_s, torch.from_numpy(probs)[None, None])[0, 0].numpy()
    return ProbeSample(source, image, probs.astype(np.float32), r_pri.astype(np.float32))


def _probe(predict, count: int = 24, seed: int = 0) -> dict:
    rng, result, params = np.random.default_rng(seed), ProbeResult(), GateParams(holdout_min=8)
    for n in range(count):
        image, truth = _scene(rng)
        sample = _sample(image, truth, predict(truth, rng))
        soft = probe_sample(sample, n, rng, params, (0.2, 0.6, 0.2), 4, UpdateParams(), PARParams(), result)
        assert soft.shape == (SIZE, SIZE) and 0.0 <= soft.min() and soft.max() <= 1.0
    return summarize_probe(result)


def _knows_the_object(truth: np.ndarray, rng) -> np.ndarray:
    """A detector that learned the objects: confident, a little blurred at the outline."""
    return np.clip((resize_mask(truth, SIZE)[0].numpy() - 0.5) * 3 + 0.5, 0.02, 0.98)


def _learned_nothing(truth: np.ndarray, rng) -> np.ndarray:
    """A detector that learned nothing about this image: a confident blob somewhere."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    cy, cx = rng.uniform(0, SIZE, 2)
    return np.where((ys - cy) ** 2 + (xs - cx) ** 2 < (SIZE / 3) ** 2, 0.95, 0.05)


def test_a_detector_that_knows_the_objects_passes_the_gate():
    probe = _probe(_knows_the_object)
    assert probe["images"] == 24 and set(probe["per_kind"]) == set(GateParams().probe_kinds)
    assert probe["repair"] > 0.5 and probe["clean_drift"] <= 0.003
    assert probe["detector_agreement_iou"] > 0.8
    decision = decide(probe, GateParams(holdout_min=8))
    assert decision["passed"] and decision["decision"] == "refined" and "24 held-out images" in decision["reason"]


def test_a_detector_that_learned_nothing_fails_and_says_why():
    probe = _probe(_learned_nothing)
    assert probe["repair"] < 0.3 and probe["repair_to_source"] < 0 and probe["clean_drift"] > 0.003
    decision = decide(probe, GateParams(holdout_min=8))
    assert not decision["passed"] and decision["decision"] == "kept_source"
    assert "source labels kept" in decision["reason"] and "max_clean_drift" in decision["reason"]


def _summary(repair=0.6, drift=0.001, images=20, kinds=None, to_source=None) -> dict:
    kinds = kinds or {"box": 0.7, "holes": 0.2}
    return {"images": images, "repair": repair, "clean_drift": drift, "corrupted_mae_before": 0.1,
            "repair_to_source": repair if to_source is None else to_source,
            "corrupted_mae_after": 0.1 * (1 - repair),
            "per_kind": {k: {"images": 10, "before": 0.1, "after": 0.1 * (1 - r), "repair": r} for k, r in kinds.items()}}


@pytest.mark.parametrize(
    ("summary", "passed", "in_reason"),
    [
        (_summary(), True, "removed 60.0%"),
        (_summary(repair=0.1), False, "removed 10.0% of realistic corruptions"),
        (_summary(drift=0.02), False, "changed 2.00% of the pixels"),
        (_summary(kinds={"box": 0.9, "erode": -0.4}), False, "did not repair erode (-40.0%)"),
        (_summary(images=3), False, "only 3 held-out images"),
        # a refiner that ignores the labels: C and S end at the same place, far from the source
        (_summary(repair=0.95, to_source=-0.6), False, "ended 60.0% farther from their source"),
    ],
)
def test_decision_table(summary, passed, in_reason):
    decision = decide(summary, GateParams(holdout_min=8))
    assert decision["passed"] is passed and in_reason in decision["reason"]
    assert decision["decision"] == ("refined" if passed else "kept_source")


def test_gate_parameters_are_checked():
    with pytest.raises(ValueError, match="holdout_fraction"):
        GateParams(holdout_fraction=1.5)
    with pytest.raises(ValueError, match="probe_kinds"):
        GateParams(probe_kinds=())
    from engine.params import load_section
    from engine.refine.params import RefineParams

    with pytest.raises(ValueError, match="unknown corruptions"):
        load_section(None, "refine", RefineParams, overrides={"gate": {"probe_kinds": ["smudge"]}})
