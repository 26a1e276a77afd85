"""Mixed precision: DySample's sampling coordinates stay float32 under bf16 autocast; GPU checks.

Tolerances: under autocast the only bf16 rounding left in :class:`DynamicUpsample` is the final cast
of the sampled values (8 significant bits: relative error <= 2^-8), so outputs must match float32
within ``rtol=2**-7, atol=2e-2`` on values of magnitude ~4. A bf16 sampling grid (the bug) misplaces
points by up to ~1/4 pixel at 64 px and gives errors of ~0.5 on random features.

Tests marked ``gpu`` are skipped without CUDA (see conftest); they run on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.sod import DynamicUpsample, ModelConfig, SODLoss, SODNet

RTOL, ATOL = 2**-7, 2e-2


def _upsampler(groups: int = 4, scale: int = 2) -> DynamicUpsample:
    torch.manual_seed(0)
    up = DynamicUpsample(8, scale, groups)
    torch.nn.init.normal_(up.offset.weight, std=0.3)  # offsets of ~0.1-1 px, as after training
    return up


def _bf16_features(device: str | torch.device = "cpu") -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 8, 64, 64, device=device).bfloat16()  # what a conv under bf16 autocast hands on


@pytest.mark.parametrize(("groups", "scale"), [(4, 2), (1, 4)])
def test_dynamic_upsample_under_cpu_bf16_autocast_matches_float32(groups, scale):
    up, features = _upsampler(groups, scale), _bf16_features()
    reference = up(features.float())  # float32 on the same (bf16-representable) values
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = up(features)
        offsets = up.offsets(features)
    assert out.dtype == torch.bfloat16 and offsets.dtype == torch.float32
    assert reference.abs().max() > 3  # values large enough for a misplaced point to show
    torch.testing.assert_close(out.float(), reference, rtol=RTOL, atol=ATOL)


def test_a_bf16_grid_would_miss_the_tolerance():
    """The check above can fail: sampling at bf16-rounded coordinates (the old behaviour) is far off."""
    up, features = _upsampler(), _bf16_features().float()
    height, width = features.shape[-2:]
    from engine.sod.upsample import regular_grid

    coords = regular_grid(height, width, 2).view(1, 1, 2, 2 * height, 2 * width) + up.offsets(features)
    grid = (coords + 0.5) * torch.tensor([2.0 / width, 2.0 / height]).view(1, 1, 2, 1, 1) - 1.0
    grid = grid.permute(0, 1, 3, 4, 2).reshape(8, 2 * height, 2 * width, 2)
    grouped = features.reshape(8, 2, height, width)
    exact = F.grid_sample(grouped, grid, align_corners=False, padding_mode="border")
    rounded = F.grid_sample(grouped, grid.bfloat16().float(), align_corners=False, padding_mode="border")
    assert (exact - rounded).abs().max() > 10 * ATOL


def test_guided_upsampling_of_one_channel_logits():
    up = DynamicUpsample(1, scale=4, groups=1, guide_channels=8)
    torch.nn.init.zeros_(up.offset.weight)
    logits, guide = torch.randn(2, 1, 5, 6), torch.randn(2, 8, 5, 6)
    expected = F.interpolate(logits, scale_factor=4, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up(logits, guide=guide), expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="guide must be"):
        up(logits, guide=torch.randn(2, 8, 4, 6))
    with pytest.raises(ValueError, match="expected"):
        up(guide)


def test_sodnet_with_logit_upsampling_trains_under_cpu_bf16_autocast():
    torch.manual_seed(0)
    model = SODNet(ModelConfig(backbone="tiny", width=8, size_hw=(64, 64), final_upsample="logits"))
    images, masks = torch.rand(2, 3, 64, 64), (torch.rand(2, 1, 64, 64) > 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images)
    total, _ = SODLoss()(out.logits, masks, out.edge_logits)
    total.backward()
    assert out.logits.shape == (2, 1, 64, 64) and torch.isfinite(total)
    assert model.decoder.final_up.offset.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)


@pytest.fixture
def cuda() -> torch.device:
    return torch.device("cuda")


@pytest.mark.gpu
@pytest.mark.parametrize(("groups", "scale"), [(4, 2), (1, 4)])
def test_dynamic_upsample_in_bf16_on_cuda_matches_float32(cuda, groups, scale):
    up, features = _upsampler(groups, scale).to(cuda), _bf16_features(cuda)
    reference = up(features.float())
    with torch.autocast(cuda.type, dtype=torch.bfloat16):
        out = up(features)
    assert out.device.type == cuda.type and out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, rtol=RTOL, atol=ATOL)
    # weights cast to bf16 as well (inference loading): still float32 coordinates inside
    torch.testing.assert_close(up.bfloat16()(features).float(), reference, rtol=RTOL, atol=2 * ATOL)


@pytest.mark.gpu
def test_dedecoder_train_step_bf16_mixed_matches_float32(cuda):
    """One optimiser step through Lightning Fabric in bf16-mixed on CUDA vs float32 on the CPU."""
    from lightning_fabric import Fabric

    torch.manual_seed(0)
    config = ModelConfig(backbone="tiny", width=8, size_hw=(64, 64), final_upsample="logits")
    initial = SODNet(config).state_dict()
    images = torch.rand(4, 3, 64, 64)
    masks = torch.zeros(4, 1, 64, 64)
    masks[..., 16:48, 16:48] = 1.0
    results = {}
    for name, accelerator, precision in (("bf16", cuda.type, "bf16-mixed"), ("fp32", "cpu", "32-true")):
        fabric = Fabric(accelerator=accelerator, devices=1, precision=precision)
        model = SODNet(config)
        model.load_state_dict(initial)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model, optimizer = fabric.setup(model, optimizer)
        out = model(fabric.to_device(images))
        total, _ = SODLoss()(out.logits, fabric.to_device(masks), out.edge_logits)
        fabric.backward(total)
        optimizer.step()
        results[name] = (float(total.detach()), {k: v.detach().float().cpu() for k, v in model.state_dict().items()})
    assert np.isfinite(results["bf16"][0])
    assert results["bf16"][0] == pytest.approx(results["fp32"][0], rel=0.03)
    weight = "decoder.final_up.offset.weight"
    assert not torch.equal(results["bf16"][1][weight], initial[weight])  # the offsets learned in bf16 too
    for key, value in results["fp32"][1].items():
        if value.is_floating_point() and "running" not in key:
            torch.testing.assert_close(results["bf16"][1][key], value, rtol=0.05, atol=0.02)


@pytest.mark.gpu
def test_train_sod_on_cuda_in_bf16_mixed(sample_set: Path, tmp_path: Path):
    """The whole trainer (cache, augmentation, channels_last, checkpoints) on CUDA in bf16-mixed."""
    from engine.sod.gt_import import import_mask_folder
    from engine.sod.params import TrainParams
    from engine.sod.predict import predict
    from engine.sod.trainer import resolve_precision, train_sod

    assert resolve_precision("auto", "auto") == "bf16-mixed"
    labels = import_mask_folder(sample_set, tmp_path / "labels").run_dir
    params = TrainParams(labels=str(labels), size_hw=(64, 64), batch_size=4, epochs=2, width=8, lr=0.01,
                         val_fraction=0.34, accelerator="cuda", precision="auto", final_upsample="logits",
                         crop_scale=(0.6, 1.0), jitter=0.2, channels_last=True)
    result = train_sod(tmp_path / "model", params, progress=False, log=lambda _: None)
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert all(np.isfinite(r["train_loss"]) and 0.0 <= r["val_mae"] <= 1.0 for r in result.history)
    written = predict(result.model_path, tmp_path / "pred", images=sample_set, device="cuda")
    assert written.written == 12 and not written.errors
