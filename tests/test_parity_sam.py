"""SAM ViT-B converted from an official-layout file matches segment-anything 1.0's own outputs.

The weights follow tests/fixtures/parity/SPEC.md (checked bit for bit against the stored
fingerprints), are saved as Meta's ``sam_vit_b_*.pth`` is (plain state dict), and go through the
path a profile pointing at a ``.pth`` takes: ``load_model(ModelSpec("sam", file), runtime)``. The
goldens are ``SamPredictor.predict(box)`` outputs of the official code on the same file and image
(see tests/fixtures/parity/README.md). One image embedding (~10-20 s on one CPU core) serves all tests.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from parity_support import (
    fingerprint_mismatches,
    golden,
    golden_json,
    input_image,
    mask_png,
    parity_threads,
    save_official,
    spec_weights,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _threads():
    with parity_threads():
        yield

# Low-res logits: measured max 8.2e-6 (2 threads) with the official LayerNorm eps the converter sets;
# transformers' default eps gives 1.7e-4 / 2.0e-4. 5e-5 leaves 6x room for float noise and still fails
# that eps by 3x (test below); the README's 5e-4 would hide it, 3e-5 is within 4x of the noise.
LOGITS_ATOL = 5e-5
EMBEDDING_ATOL = 1e-4  # measured max 1.4e-5
IOU_PRED_ATOL = 1e-4
MIN_MASK_IOU = 0.999


@pytest.fixture(scope="module")
def sam(tmp_path_factory):
    """The converted SAM, and what its adapter's ``segment()`` computed for the golden box."""
    from engine.models.registry import clear_model_cache, load_model, resolve_source
    from engine.models.runtime import resolve_runtime
    from engine.params import ModelSpec

    state = spec_weights("sam_vit_b")
    mismatches = fingerprint_mismatches(state, "sam_vit_b")
    path = save_official(state, "sam_vit_b", tmp_path_factory.mktemp("sam-official") / "sam_vit_b_spec.pth")
    del state
    spec = ModelSpec("sam", str(path))
    segmenter = load_model(spec, resolve_runtime("cpu", "fp32"))
    converted_dir = resolve_source(spec).directory
    clear_model_cache()
    path.unlink()
    shutil.rmtree(converted_dir)  # ~375 MB; the model stays in memory

    captured = SimpleNamespace(decoder=[], embeddings=None)
    hooks = [
        segmenter.model.register_forward_hook(lambda m, a, out: captured.decoder.append(out)),
        segmenter.model.vision_encoder.register_forward_hook(
            lambda m, a, out: setattr(captured, "embeddings", out[0].detach().clone())),
    ]
    box = np.array([golden_json("sam_golden")["box_xyxy_original_pixels"]], np.float32)
    try:
        (masks,) = segmenter.segment([input_image()], [box])
    finally:
        for hook in hooks:
            hook.remove()
    yield SimpleNamespace(segmenter=segmenter, mismatches=mismatches, masks=masks, box=box,
                          decoder=[o for o in captured.decoder if getattr(o, "pred_masks", None) is not None],
                          embeddings=captured.embeddings)


def _decode(sam, multimask: bool) -> tuple[np.ndarray, np.ndarray]:
    """Low-res logits ``(K, 256, 256)`` and IoU predictions ``(K,)`` for the golden box, from the captured embedding."""
    with torch.inference_mode():
        out = sam.segmenter.model(image_embeddings=sam.embeddings, input_boxes=torch.from_numpy(sam.box)[None],
                                  multimask_output=multimask)
    return out.pred_masks[0, 0].numpy(), out.iou_scores[0, 0].numpy()


def _upscaled_mask(sam, lowres: np.ndarray) -> np.ndarray:
    """The ``(800, 1024)`` bool mask of one ``(256, 256)`` low-res logit map, as the adapter computes it."""
    processor = sam.segmenter.processor
    logits = processor.post_process_masks(torch.from_numpy(lowres)[None, None, None], [[800, 1024]], [[800, 1024]],
                                          binarize=False)[0]
    return (logits[0, 0] > 0).numpy()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_spec_weights_match_the_fingerprints_bit_for_bit(sam):
    assert sam.mismatches == []


def test_converted_config_uses_the_official_decoder_layer_norm_eps(sam):
    config = sam.segmenter.model.config
    assert config.mask_decoder_config.layer_norm_eps == 1e-5
    assert (config.vision_config.hidden_size, config.vision_config.num_hidden_layers) == (768, 12)  # vit_b from shapes


def test_image_embedding_matches_the_official_one(sam):
    ours = sam.embeddings[0, :, ::4, ::4].numpy()  # the stored golden keeps every 4th row and column
    np.testing.assert_allclose(ours, golden("sam_image_embedding_sub4"), rtol=0, atol=EMBEDDING_ATOL)


@pytest.mark.parametrize("mode", ["multimask", "single"])
def test_low_res_logits_and_iou_predictions_match_the_official_ones(sam, mode):
    lowres, iou = _decode(sam, multimask=mode == "multimask")
    np.testing.assert_allclose(lowres, golden(f"sam_lowres_logits_{mode}"), rtol=0, atol=LOGITS_ATOL)
    np.testing.assert_allclose(iou, golden(f"sam_iou_predictions_{mode}"), rtol=0, atol=IOU_PRED_ATOL)


@pytest.mark.parametrize("mode, png", [("multimask", "sam_mask_multimask_best"), ("single", "sam_mask_single")])
def test_full_size_masks_match_the_official_ones(sam, mode, png):
    lowres, iou = _decode(sam, multimask=mode == "multimask")
    assert _iou(_upscaled_mask(sam, lowres[int(iou.argmax())]), mask_png(png)) >= MIN_MASK_IOU


def test_segment_end_to_end_gives_the_official_mask(sam):
    """The adapter's own call (its preprocessing, box scaling, choice among outputs, upscaling)."""
    (decoded,) = sam.decoder
    count = decoded.pred_masks.shape[2]  # 3 with multimask output, 1 without
    mode, png = ("multimask", "sam_mask_multimask_best") if count == 3 else ("single", "sam_mask_single")
    np.testing.assert_allclose(decoded.pred_masks[0, 0].numpy(), golden(f"sam_lowres_logits_{mode}"), rtol=0, atol=LOGITS_ATOL)
    official = mask_png(png)
    assert sam.masks.masks.shape == (1, *official.shape)
    assert _iou(sam.masks.masks[0], official) >= MIN_MASK_IOU
    assert sam.masks.pred_iou[0] == pytest.approx(golden(f"sam_iou_predictions_{mode}").max(), abs=IOU_PRED_ATOL)


def test_transformers_default_eps_would_fail_the_logit_tolerance(sam):
    """The tolerance is tight enough to see transformers' LayerNorm eps (1e-6) instead of the official 1e-5."""
    norms = [m for name, m in sam.segmenter.model.mask_decoder.named_modules()
             if isinstance(m, torch.nn.LayerNorm) and m.eps == 1e-5 and ".layers." in f".{name}"]
    assert len(norms) == 8  # layer_norm1..4 of the two two-way attention blocks
    try:
        for norm in norms:
            norm.eps = 1e-6
        lowres, _ = _decode(sam, multimask=True)
    finally:
        for norm in norms:
            norm.eps = 1e-5
    assert np.abs(lowres - golden("sam_lowres_logits_multimask")).max() > 2 * LOGITS_ATOL
