"""SCE and two-stream detector shapes, the centred SCE head, and adapter freezing."""

from __future__ import annotations

import pytest
import torch

from engine.params import load_section
from engine.refine.adapters import AdaptedBlock, adapter_parameters, adapter_train_mode, attach_adapter
from engine.refine.losses import iou_loss
from engine.refine.models import build_cue_extractor, build_detector
from engine.refine.params import RefineParams


def test_cue_extractor_shapes_and_zero_mean_logits():
    torch.manual_seed(0)
    model = build_cue_extractor("tiny")
    images = torch.rand(2, 3, 64, 64)
    decoder_logits = model.decoder(model.backbone(images)[1:4])
    # the centred head cannot collapse to a constant map: logits average zero per image
    assert torch.allclose(decoder_logits.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-4)
    assert model(images).shape == (2, 1, 64, 64)
    cues = model.cues(images)
    assert cues.shape == (2, 1, 64, 64) and 0.0 <= cues.min().item() and cues.max().item() <= 1.0


def test_detector_second_stream_defaults_to_rgb_and_checks_shapes():
    torch.manual_seed(0)
    model = build_detector("tiny").eval()
    images = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(images), model(images, images))
        assert model(images, torch.rand(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match="second stream"):
        model(images, torch.rand(1, 3, 32, 32))


def test_adapter_starts_as_identity_and_only_adapter_parameters_change():
    torch.manual_seed(0)
    model = build_detector("tiny")
    images, target = torch.rand(2, 3, 64, 64), (torch.rand(2, 1, 64, 64) > 0.7).float()
    model.eval()
    with torch.no_grad():
        before_out = model(images)
    trainable = attach_adapter(model, hidden=8)
    assert isinstance(model.decoder.branches[-1], AdaptedBlock)
    assert {id(p) for p in trainable} == {id(p) for p in adapter_parameters(model)}
    assert {id(p) for p in model.parameters() if p.requires_grad} == {id(p) for p in trainable}
    with torch.no_grad():
        assert torch.allclose(model(images), before_out, atol=1e-6)  # F' = T(F) + 0 at the start

    state = {k: v.clone() for k, v in model.state_dict().items()}  # parameters and BN statistics
    optimizer = torch.optim.SGD(trainable, lr=0.5)
    for _ in range(2):
        adapter_train_mode(model)
        loss = iou_loss(torch.sigmoid(model(images)), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, state[k])}
    assert changed and all(".adapter." in k for k in changed), sorted(changed)[:5]
    assert any(k.endswith("adapter.down.weight") for k in changed)  # second step reaches the first layer


def test_attach_adapter_rejects_models_without_a_decoder_and_twice():
    with pytest.raises(TypeError, match="decoder.branches"):
        attach_adapter(torch.nn.Linear(2, 2))
    model = build_detector("tiny")
    attach_adapter(model)
    with pytest.raises(ValueError, match="already"):
        attach_adapter(model)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"init": "sam"}, "init"),
        ({"spr": {"weights": [0.5, 0.5]}}, "weights"),
        ({"par": {"dilations": [0, 1]}}, "dilations"),
        ({"detector": {"iou_weight": 0, "bce_weight": 0}}, "iou_weight"),
        ({"sce": {"pcl_rate": 1}}, "unknown keys"),
    ],
)
def test_refine_params_are_validated(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_section(None, "refine", RefineParams, overrides=overrides)


def test_refine_params_defaults_follow_the_paper():
    params = load_section(None, "refine", RefineParams)
    assert params.spr.weights == (0.2, 0.6, 0.2) and params.par.dilations == (1, 2, 4, 8)
    assert (params.sce.pcl_start, params.sce.pcl_slope, params.detector.bce_weight) == (0.2, 0.6, 0.0)
