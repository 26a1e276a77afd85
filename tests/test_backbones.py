"""Backbones: shapes per name, torchvision/MoCo-v2 key mapping, refusal of mismatched checkpoints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from engine.backbones import build_backbone, hf_to_torchvision_key, torchvision_to_hf_key


@pytest.mark.parametrize(
    ("name", "channels"),
    [("tiny", (16, 24, 32, 48)), ("cpu_small", (48, 96, 192, 384)), ("tiny_swin", (8, 16, 32, 64)), ("tiny_pvt_v2", (8, 16, 24, 32)),
     ("tiny_convnext", (8, 16, 24, 32))],
)
def test_feature_maps_have_strides_4_to_32(name, channels):
    torch.manual_seed(0)
    backbone = build_backbone(name).eval()
    features = backbone(torch.rand(2, 3, 64, 96))
    assert backbone.channels == channels
    assert [tuple(f.shape) for f in features] == [(2, c, 64 // s, 96 // s) for c, s in zip(channels, (4, 8, 16, 32), strict=True)]


@pytest.mark.parametrize(
    ("torchvision", "hf"),
    [
        ("conv1.weight", "embedder.embedder.convolution.weight"),
        ("bn1.running_var", "embedder.embedder.normalization.running_var"),
        ("layer1.0.conv1.weight", "encoder.stages.0.layers.0.layer.0.convolution.weight"),
        ("layer3.5.bn3.bias", "encoder.stages.2.layers.5.layer.2.normalization.bias"),
        ("layer4.0.downsample.0.weight", "encoder.stages.3.layers.0.shortcut.convolution.weight"),
        ("layer2.0.downsample.1.num_batches_tracked", "encoder.stages.1.layers.0.shortcut.normalization.num_batches_tracked"),
        ("fc.weight", None),
    ],
)
def test_key_mapping_table(torchvision, hf):
    assert torchvision_to_hf_key(torchvision) == hf
    if hf is not None:
        assert hf_to_torchvision_key(hf) == torchvision


def test_resnet50_matches_torchvision_size():
    # torchvision resnet50 has 25,557,032 parameters, 2,049,000 of them in fc.
    assert sum(p.numel() for p in build_backbone("resnet50").parameters()) == 25_557_032 - 2_049_000


def _to_torchvision(hf_key: str) -> str:
    """Independent inverse of the mapping, written by hand for the fixture."""
    key = hf_key.replace("embedder.embedder.convolution", "conv1").replace("embedder.embedder.normalization", "bn1")
    key = re.sub(r"encoder\.stages\.(\d)\.layers\.(\d)\.", lambda m: f"layer{int(m[1]) + 1}.{m[2]}.", key)
    key = key.replace("shortcut.convolution", "downsample.0").replace("shortcut.normalization", "downsample.1")
    key = re.sub(r"layer\.(\d)\.convolution", lambda m: f"conv{int(m[1]) + 1}", key)
    return re.sub(r"layer\.(\d)\.normalization", lambda m: f"bn{int(m[1]) + 1}", key)


@pytest.fixture(scope="module")
def reference():
    """A tiny ResNet with non-trivial weights and BN statistics, and its torchvision-layout state dict."""
    torch.manual_seed(1)
    model = build_backbone("tiny").eval()
    with torch.no_grad():
        for name, tensor in model.body.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor) * 0.3)
    state = {_to_torchvision(k): v.clone() for k, v in model.body.state_dict().items()}
    state["fc.weight"], state["fc.bias"] = torch.randn(10, 48), torch.randn(10)
    return model, state


@pytest.fixture
def torchvision_file(reference, tmp_path) -> Path:
    path = tmp_path / "resnet_tiny.pth"
    torch.save(reference[1], path)
    return path


@pytest.fixture
def moco_file(reference, tmp_path) -> Path:
    q = {f"module.encoder_q.{k}": v for k, v in reference[1].items() if not k.startswith("fc.")}
    q.update({"module.encoder_q.fc.0.weight": torch.randn(48, 48), "module.encoder_q.fc.2.weight": torch.randn(8, 48)})
    k = {key.replace("encoder_q", "encoder_k"): torch.zeros_like(v) for key, v in q.items()}
    path = tmp_path / "moco_v2_200ep_pretrain.pth.tar"
    torch.save({"epoch": 200, "arch": "resnet50", "state_dict": {**q, **k, "module.queue": torch.randn(8, 16),
                                                                 "module.queue_ptr": torch.zeros(1)}}, path)
    return path


@pytest.mark.parametrize("which", ["torchvision_file", "moco_file"])
def test_checkpoint_loads_to_same_weights_and_outputs(which, reference, request):
    model, _ = reference
    loaded = build_backbone("tiny", request.getfixturevalue(which)).eval()
    for key, value in model.body.state_dict().items():
        assert torch.equal(loaded.body.state_dict()[key], value), key
    images = torch.rand(1, 3, 64, 64)
    for got, want in zip(loaded(images), model(images), strict=True):
        assert torch.equal(got, want)


def test_missing_num_batches_tracked_is_accepted(reference, tmp_path):
    path = tmp_path / "old.pth"
    torch.save({k: v for k, v in reference[1].items() if not k.endswith("num_batches_tracked")}, path)
    loaded = build_backbone("tiny", path)
    assert torch.equal(loaded.body.state_dict()["embedder.embedder.convolution.weight"], reference[1]["conv1.weight"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("layer2.0.conv1.weight"), r"missing keys \[layer2\.0\.conv1\.weight\]"),
        (lambda s: s.update({"layer5.0.conv1.weight": torch.zeros(1)}), r"unexpected keys \[layer5\.0\.conv1\.weight\]"),
        (lambda s: s.update({"layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1)}),
         r"shape mismatches \[layer1\.0\.conv1\.weight: file \(64, 64, 1, 1\) vs model \(4, 8, 1, 1\)\]"),
        (lambda s: s.update({"attention.weight": torch.zeros(1)}), r"unexpected keys \[attention\.weight\]"),
    ],
)
def test_mismatched_checkpoint_is_refused_with_keys_named(edit, message, reference, tmp_path):
    state = dict(reference[1])
    edit(state)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=rf"bad\.pth: checkpoint does not fit this ResNet: .*{message}"):
        build_backbone("tiny", path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("tiny", b"not a checkpoint", "cannot read checkpoint"),
        ("tiny", None, "checkpoint file not found"),
        ("tiny_swin", "state", "loads only a Hugging Face directory"),
        ("nope", "state", "unknown backbone 'nope'"),
    ],
)
def test_unusable_checkpoint_files_are_refused(name, content, message, reference, tmp_path):
    path = tmp_path / "weights.pth"
    if content == "state":
        torch.save(reference[1], path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        build_backbone(name, path)


def test_hugging_face_directory_round_trip_and_wrong_family(reference, tmp_path):
    model, _ = reference
    model.body.save_pretrained(tmp_path / "resnet")
    loaded = build_backbone("tiny", tmp_path / "resnet").eval()
    images = torch.rand(1, 3, 32, 32)
    for got, want in zip(loaded(images), model(images), strict=True):
        torch.testing.assert_close(got, want)  # same weights; conv kernels may pick another algorithm
    build_backbone("tiny_convnext").body.save_pretrained(tmp_path / "convnext")
    with pytest.raises(ValueError, match="holds a 'convnext' model, backbone 'tiny' needs 'resnet'"):
        build_backbone("tiny", tmp_path / "convnext")
