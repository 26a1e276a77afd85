"""Dynamic upsampler, DEDecoder and SODNet: shapes, gradients, equivalences, save/load."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.sod import DEDecoder, DynamicUpsample, ModelConfig, SODNet, load_model, save_model
from engine.sod.upsample import regular_grid, sample_at


def test_regular_grid_is_the_bilinear_source_grid():
    grid = regular_grid(1, 2, 2)  # output x: (i + 0.5) / 2 - 0.5 for i = 0..3
    assert grid[0, 0].tolist() == [-0.25, 0.25, 0.75, 1.25]
    assert grid[1, :, 0].tolist() == [-0.25, 0.25]


@pytest.mark.parametrize(("scale", "groups", "size_hw"), [(2, 4, (5, 7)), (4, 2, (3, 4)), (2, 1, (4, 4))])
def test_zero_offsets_equal_bilinear_upsampling(scale, groups, size_hw):
    up = DynamicUpsample(8, scale, groups)
    torch.nn.init.zeros_(up.offset.weight)
    features = torch.randn(2, 8, *size_hw)
    expected = F.interpolate(features, scale_factor=scale, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up(features), expected, atol=1e-5, rtol=0)


def test_offsets_move_sampling_points_per_group():
    # One pixel row [0, 1, 2, 3]; group 0 shifted +1 px in x, group 1 unshifted.
    features = torch.arange(4.0).view(1, 1, 1, 4).repeat(1, 2, 1, 1)
    coords = torch.stack([torch.tensor([[0.0, 1.0, 2.0, 3.0]]), torch.zeros(1, 4)])  # (2, 1, 4): x, y
    shifted = coords.clone()
    shifted[0] += 1.0
    out = sample_at(features, torch.stack([shifted, coords])[None], groups=2)
    assert out[0, 0, 0].tolist() == [1.0, 2.0, 3.0, 3.0]  # border clamps
    assert out[0, 1, 0].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_offset_scale_and_gradients_reach_the_offset_conv():
    up = DynamicUpsample(8, 2, 4, offset_scale=0.25)
    features = torch.randn(1, 8, 4, 4, requires_grad=True)
    assert up.offsets(features).shape == (1, 4, 2, 8, 8)
    up(features).square().sum().backward()
    assert up.offset.weight.grad.abs().sum() > 0 and features.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [torch.zeros(1, 6, 4, 4), torch.zeros(6, 4, 4)])
def test_upsampler_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match="DynamicUpsample"):
        DynamicUpsample(8, 2, 4)(bad)


CHANNELS = (16, 24, 32, 48)


def _features(batch: int, size_hw: tuple[int, int]) -> list[torch.Tensor]:
    return [torch.randn(batch, c, size_hw[0] // s, size_hw[1] // s) for c, s in zip(CHANNELS, (4, 8, 16, 32), strict=True)]


@pytest.mark.parametrize(
    ("upsample", "edge_branch", "size_hw"),
    [("dynamic", True, (64, 96)), ("bilinear", True, (64, 64)), ("dynamic", False, (64, 96)), ("bilinear", False, (70, 90))],
)
def test_decoder_shapes_and_gradients(upsample, edge_branch, size_hw):
    decoder = DEDecoder(CHANNELS, width=8, upsample=upsample, edge_branch=edge_branch)
    features = [f.requires_grad_() for f in _features(2, (64, 96) if size_hw == (70, 90) else size_hw)]
    logits, edge_logits, sides = decoder(features, size_hw)
    assert sides == ()
    assert logits.shape == (2, 1, *size_hw)
    assert (edge_logits is not None) == edge_branch
    if edge_branch:
        assert edge_logits.shape == (2, 1, *size_hw)
    (logits.sum() + (edge_logits.sum() if edge_logits is not None else 0)).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in features)
    assert all(p.grad is not None for n, p in decoder.named_parameters() if "offset" not in n or upsample == "dynamic")


def test_edge_branch_feeds_the_saliency_head():
    decoder = DEDecoder(CHANNELS, width=8, edge_branch=True).eval()
    logits, _, _ = decoder(_features(1, (64, 64)), (64, 64))
    logits.sum().backward()
    assert decoder.edge[0][0].weight.grad.abs().sum() > 0  # saliency loss alone trains the edge branch


def test_sodnet_end_to_end_and_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = SODNet(ModelConfig(backbone="tiny", width=8, size_hw=(64, 64))).eval()
    images = torch.rand(2, 3, 64, 64)
    out = model(images)
    assert out.logits.shape == (2, 1, 64, 64) and out.edge_logits.shape == (2, 1, 64, 64)
    loaded = load_model(save_model(model, tmp_path / "model.pt"))
    assert loaded.config == model.config
    torch.testing.assert_close(loaded(images).logits, out.logits)


def test_load_model_refuses_other_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt: not a sodforge SOD model file"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="SODNet: expected images"):
        SODNet(ModelConfig(width=8))(torch.rand(1, 1, 32, 32))


def test_side_outputs_exist_in_training_only_and_join_the_loss():
    from engine.sod import LossWeights, SODLoss

    torch.manual_seed(0)
    model = SODNet(ModelConfig(backbone="tiny", width=8, size_hw=(64, 64), side_outputs=True))
    images, masks = torch.rand(2, 3, 64, 64), (torch.rand(2, 1, 64, 64) > 0.5).float()
    out = model(images)
    assert len(out.side_logits) == 3 and all(s.shape == (2, 1, 64, 64) for s in out.side_logits)
    total, parts = SODLoss(LossWeights(side=0.5))(out.logits, masks, out.edge_logits, out.side_logits)
    without, _ = SODLoss(LossWeights(side=0.0))(out.logits, masks, out.edge_logits, out.side_logits)
    assert float(total.detach()) == pytest.approx(float(without.detach()) + 0.5 * parts["side"], rel=1e-5) and parts["side"] > 0
    total.backward()
    assert all(head.weight.grad.abs().sum() > 0 for head in model.decoder.side)
    assert model.eval()(images).side_logits == ()
