"""Our model inputs against the transformers processors, on odd sizes; canvases and masks by hand.

Tolerance: pixel values within 1e-6 (the resize is PIL's own, byte-identical; the normalisation is
one fused multiply-add in float32 where the processors rescale in float64 then normalise in float32).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.models.preprocess import ImageTransform, PixelBatch, collate

ODD_SIZES = [(37, 53), (301, 199), (17, 250), (480, 640), (1001, 999)]


def _processors():
    from transformers import BlipImageProcessorPil, GroundingDinoImageProcessorPil, SamImageProcessorPil

    return {
        "blip-384-bicubic": BlipImageProcessorPil(),
        "blip-tiny": BlipImageProcessorPil(size={"height": 64, "width": 64}),
        "gdino-800x1333": GroundingDinoImageProcessorPil(),
        "gdino-tiny": GroundingDinoImageProcessorPil(size={"shortest_edge": 128, "longest_edge": 192}),
        "sam-1024": SamImageProcessorPil(),
    }


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ODD_SIZES]


@pytest.mark.parametrize("name", list(_processors()))
def test_same_tensors_as_the_processor(name, images):
    processor = _processors()[name]
    transform = ImageTransform.from_processor(processor)
    for image in images:
        want = processor([image], return_tensors="pt")
        got = collate([transform.resize(image)], [image.shape[:2]], transform, normalize_now=True)
        assert got.pixels.shape == want["pixel_values"].shape, (name, image.shape)
        torch.testing.assert_close(got.pixels, want["pixel_values"], atol=1e-6, rtol=0)
        if "pixel_mask" in want:
            assert torch.equal(got.valid_mask().long(), want["pixel_mask"])
        if "reshaped_input_sizes" in want:
            assert [list(hw) for hw in got.sizes_hw] == want["reshaped_input_sizes"].tolist()


def test_a_padded_batch_matches_the_processor_batch(images):
    from transformers import GroundingDinoImageProcessorPil

    processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 128, "longest_edge": 192})
    transform = ImageTransform.from_processor(processor)
    batch = images[:3]
    want = processor(batch, return_tensors="pt")  # pads to the largest image, with pixel_mask
    got = collate([transform.resize(i) for i in batch], [i.shape[:2] for i in batch], transform, normalize_now=False)
    torch.testing.assert_close(got.to_model(torch.device("cpu")), want["pixel_values"], atol=1e-6, rtol=0)
    assert torch.equal(got.valid_mask().long(), want["pixel_mask"])


@pytest.mark.parametrize(
    "rule, size, size_hw, pad_multiple, resized, canvas",
    [
        ("fixed", (384, 384), (300, 400), 1, (384, 384), (384, 384)),
        ("longest", (1024,), (300, 400), 1, (768, 1024), (768, 1024)),
        ("longest", (1024,), (333, 500), 1, (682, 1024), (682, 1024)),  # int(681.98 + 0.5)
        ("shortest_longest", (800, 1333), (300, 400), 1, (800, 1066), (800, 1066)),
        ("shortest_longest", (800, 1333), (300, 400), 8, (800, 1066), (800, 1072)),
        ("shortest_longest", (800, 1333), (300, 400), 32, (800, 1066), (800, 1088)),
        ("shortest_longest", (800, 1333), (267, 400), 32, (800, 1198), (800, 1216)),
        ("shortest_longest", (800, 1333), (100, 400), 1, (333, 1333), (333, 1333)),  # longest edge caps
        ("none", (), (37, 53), 4, (37, 53), (40, 56)),
    ],
)
def test_resized_size_and_canvas(rule, size, size_hw, pad_multiple, resized, canvas):
    transform = ImageTransform(rule, size, pad_multiple=pad_multiple)
    assert transform.output_size(size_hw) == resized
    assert transform.canvas(resized) == canvas


def test_fixed_pad_canvas_and_masks_by_hand():
    transform = ImageTransform("none", pad_hw=(4, 5))
    images = [torch.full((3, 2, 3), 7, dtype=torch.uint8), torch.full((3, 4, 1), 9, dtype=torch.uint8)]
    batch = collate(images, [(2, 3), (4, 1)], transform, normalize_now=False)
    assert batch.canvas_hw == (4, 5) and batch.pixels.dtype == torch.uint8
    mask = batch.valid_mask()
    assert mask[0].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [0] * 5, [0] * 5]
    assert mask[1].tolist() == [[1, 0, 0, 0, 0]] * 4
    normalized = batch.to_model(torch.device("cpu"))
    assert torch.allclose(normalized[0, :, :2, :3], torch.tensor(7 / 255)) and normalized[0, :, 2:].abs().sum() == 0
    only_second = batch.subset([1])
    assert only_second.sizes_hw == [(4, 1)] and torch.equal(only_second.pixels[0], batch.pixels[1])
    assert batch.subset([0, 1]) is batch


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8)])
def test_resize_names_what_it_expected(bad):
    with pytest.raises(TypeError, match=r"\(H, W, 3\) uint8"):
        ImageTransform("fixed", (8, 8)).resize(bad)


def test_pixel_batch_from_processor_rejects_unknown_sizes():
    class Odd:
        size = {"max_height": 10}
        resample = 2

    with pytest.raises(ValueError, match="unsupported size"):
        ImageTransform.from_processor(Odd())
    assert isinstance(collate([torch.zeros(3, 2, 2, dtype=torch.uint8)], [(2, 2)], ImageTransform("none"), True), PixelBatch)
