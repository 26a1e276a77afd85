"""Round-trip tests of the SAM key mapping, config inference and refusals (fast, tiny models).

These are circular by construction: the "official" file is written from a transformers ``SamModel`` by
this test's own inverse mapping, so they prove the mapping is a bijection on every key and that bad
files are refused by name, not that the converted model computes what segment-anything computes.
That is proven against segment-anything's own outputs in tests/test_parity_sam.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import SamConfig, SamModel

from engine.models.convert import convert_cached
from engine.models.convert.sam import convert_sam, infer_sam_config, map_sam_keys

TINY = dict(
    vision_config=dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2, image_size=128,
        patch_size=16, output_channels=16, window_size=4, global_attn_indexes=[1], mlp_dim=48, num_pos_feats=8,
        initializer_range=0.02,
    ),
    prompt_encoder_config=dict(hidden_size=16, image_size=128, patch_size=16, mask_input_channels=4),
    mask_decoder_config=dict(hidden_size=16, mlp_dim=32, num_hidden_layers=2, num_attention_heads=8, iou_head_hidden_dim=24,
                             layer_norm_eps=1e-5),  # what the converter sets: segment-anything's eps
)
VARIANTS = {  # the official image encoders (transformers' convert_sam_to_hf.py)
    "vit_b": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, global_attn_indexes=[2, 5, 8, 11]),
    "vit_l": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, global_attn_indexes=[5, 11, 17, 23]),
    "vit_h": dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, global_attn_indexes=[7, 15, 23, 31]),
}

# The inverse of the converter's mapping, written independently: transformers -> official names.
_INVERSE = (
    (r"^vision_encoder\.", "image_encoder."),
    (r"^image_encoder\.layers\.", "image_encoder.blocks."),
    (r"patch_embed\.projection\.", "patch_embed.proj."),
    (r"neck\.conv1\.", "neck.0."), (r"neck\.layer_norm1\.", "neck.1."),
    (r"neck\.conv2\.", "neck.2."), (r"neck\.layer_norm2\.", "neck.3."),
    (r"mask_embed\.conv1\.", "mask_downscaling.0."), (r"mask_embed\.layer_norm1\.", "mask_downscaling.1."),
    (r"mask_embed\.conv2\.", "mask_downscaling.3."), (r"mask_embed\.layer_norm2\.", "mask_downscaling.4."),
    (r"mask_embed\.conv3\.", "mask_downscaling.6."),
    (r"upscale_conv1\.", "output_upscaling.0."), (r"upscale_layer_norm\.", "output_upscaling.1."),
    (r"upscale_conv2\.", "output_upscaling.3."),
    (r"layer_norm_final_attn\.", "norm_final_attn."),
    (r"\.layer_norm(\d)\.", r".norm\1."),
    (r"shared_embedding\.positional_embedding$", "pe_layer.positional_encoding_gaussian_matrix"),
    (r"^prompt_encoder\.point_embed\.", "prompt_encoder.point_embeddings."),
)
_MLP = re.compile(r"^(mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))\.(proj_in|proj_out|layers\.(\d+))\.(.+)$")


def to_official(hf_state: dict[str, torch.Tensor], mlp_depth: int = 3) -> dict[str, torch.Tensor]:
    """segment-anything's key layout for a SamModel state dict."""
    out = {}
    for key, value in hf_state.items():
        if key.startswith("shared_image_embedding."):
            continue  # a copy of the prompt encoder's matrix; the official model has it once
        match = _MLP.match(key)
        if match:
            index = {"proj_in": 0, "proj_out": mlp_depth - 1}.get(match.group(2))
            index = int(match.group(3)) + 1 if index is None else index
            out[f"{match.group(1)}.layers.{index}.{match.group(4)}"] = value
            continue
        for pattern, replacement in _INVERSE:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> tuple[Path, SamModel]:
    """A tiny SAM saved in the official layout (plus the pixel_mean/std buffers some files carry)."""
    torch.manual_seed(0)
    model = SamModel(SamConfig(**TINY)).eval()
    state = to_official(model.state_dict())
    state["pixel_mean"] = torch.tensor([123.675, 116.28, 103.53]).view(-1, 1, 1)
    state["pixel_std"] = torch.tensor([58.395, 57.12, 57.375]).view(-1, 1, 1)
    path = tmp_path_factory.mktemp("sam") / "sam_vit_t_test.pth"
    torch.save(state, path)
    return path, model


@pytest.mark.parametrize(
    "official_key, hf_key",
    [
        ("image_encoder.pos_embed", "vision_encoder.pos_embed"),
        ("image_encoder.patch_embed.proj.weight", "vision_encoder.patch_embed.projection.weight"),
        ("image_encoder.blocks.1.attn.rel_pos_h", "vision_encoder.layers.1.attn.rel_pos_h"),
        ("image_encoder.blocks.0.norm1.weight", "vision_encoder.layers.0.layer_norm1.weight"),
        ("image_encoder.blocks.2.mlp.lin2.bias", "vision_encoder.layers.2.mlp.lin2.bias"),
        ("image_encoder.neck.2.weight", "vision_encoder.neck.conv2.weight"),
        ("image_encoder.neck.3.bias", "vision_encoder.neck.layer_norm2.bias"),
        ("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", "prompt_encoder.shared_embedding.positional_embedding"),
        ("prompt_encoder.point_embeddings.3.weight", "prompt_encoder.point_embed.3.weight"),
        ("prompt_encoder.not_a_point_embed.weight", "prompt_encoder.not_a_point_embed.weight"),
        ("prompt_encoder.mask_downscaling.4.weight", "prompt_encoder.mask_embed.layer_norm2.weight"),
        ("prompt_encoder.mask_downscaling.6.bias", "prompt_encoder.mask_embed.conv3.bias"),
        ("mask_decoder.transformer.layers.1.norm4.weight", "mask_decoder.transformer.layers.1.layer_norm4.weight"),
        ("mask_decoder.transformer.norm_final_attn.bias", "mask_decoder.transformer.layer_norm_final_attn.bias"),
        ("mask_decoder.output_upscaling.1.weight", "mask_decoder.upscale_layer_norm.weight"),
        ("mask_decoder.output_hypernetworks_mlps.3.layers.1.weight", "mask_decoder.output_hypernetworks_mlps.3.layers.0.weight"),
        ("mask_decoder.output_hypernetworks_mlps.0.layers.2.bias", "mask_decoder.output_hypernetworks_mlps.0.proj_out.bias"),
        ("mask_decoder.iou_prediction_head.layers.0.weight", "mask_decoder.iou_prediction_head.proj_in.weight"),
    ],
)
def test_official_names_map_to_transformers_names(official, official_key, hf_key):
    state = torch.load(official[0], weights_only=True)
    assert official_key in state  # the fixture really has segment-anything's layout
    assert map_sam_keys({official_key: state[official_key], **state})[hf_key] is state[official_key]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_inferred_from_shapes(variant):
    with torch.device("meta"):
        model = SamModel(SamConfig(vision_config=VARIANTS[variant]))
    config = infer_sam_config(f"{variant}.pth", to_official(model.state_dict()))
    for key, value in VARIANTS[variant].items():
        assert getattr(config.vision_config, key) == value, key
    assert (config.vision_config.window_size, config.vision_config.image_size, config.mask_decoder_config.num_multimask_outputs) == (14, 1024, 3)


def test_round_trip_through_our_inverse_mapping_gives_identical_weights_and_outputs(official, tmp_path):
    path, reference = official
    converted = SamModel.from_pretrained(convert_sam(path, tmp_path / "out")).eval()
    ours, theirs = converted.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    torch.manual_seed(1)
    pixels = torch.randn(1, 3, 128, 128)
    boxes = torch.tensor([[[10.0, 12.0, 90.0, 100.0], [40.0, 30.0, 120.0, 70.0]]])
    with torch.no_grad():
        a = converted(pixel_values=pixels, input_boxes=boxes)
        b = reference(pixel_values=pixels, input_boxes=boxes)
    assert torch.equal(a.pred_masks, b.pred_masks) and torch.equal(a.iou_scores, b.iou_scores)


def _corrupt(state: dict, kind: str) -> tuple[dict, str]:
    state = dict(state)
    if kind == "missing":
        del state["mask_decoder.iou_token.weight"]
        return state, r"missing keys \(1\): mask_decoder\.iou_token\.weight"
    if kind == "unexpected":
        state["mask_decoder.extra_head.weight"] = torch.zeros(3)
        return state, r"unexpected keys \(1\): mask_decoder\.extra_head\.weight"
    state["prompt_encoder.no_mask_embed.weight"] = torch.zeros(1, 17)
    return state, r"mismatched shapes \(1\): prompt_encoder\.no_mask_embed\.weight: checkpoint \(1, 17\) vs model \(1, 16\)"


@pytest.mark.parametrize("kind", ["missing", "unexpected", "shape"])
def test_corrupted_checkpoint_is_refused_naming_the_keys(official, tmp_path, kind):
    state, message = _corrupt(torch.load(official[0], weights_only=True), kind)
    bad = tmp_path / f"bad_{kind}.pth"
    torch.save(state, bad)
    with pytest.raises(ValueError, match=rf"bad_{kind}\.pth.*{message}"):
        convert_sam(bad, tmp_path / "out")


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_unreadable_or_absent_file_is_refused(tmp_path, content):
    path = tmp_path / "broken.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="broken.pth"):
        convert_sam(path, tmp_path / "out")


def test_registry_converts_once_and_loads_like_a_directory(official, tmp_path, monkeypatch):
    from engine.models.registry import clear_model_cache, load_model, resolve_source
    from engine.models.runtime import resolve_runtime
    from engine.params import ModelSpec

    monkeypatch.setenv("SODFORGE_CACHE", str(tmp_path / "cache"))
    spec = ModelSpec("sam", str(official[0]))
    first = resolve_source(spec)
    stamp = (first.directory / "config.json").stat().st_mtime_ns
    second = resolve_source(spec)
    assert first == second and (second.directory / "config.json").stat().st_mtime_ns == stamp
    assert re.fullmatch(r"sam:pth:[0-9a-f]{32}:c\d+", first.identity)  # file hash + converter version
    assert first.directory.parent == tmp_path / "cache" / "converted"
    clear_model_cache()
    segmenter = load_model(spec, resolve_runtime("cpu", "fp32"))
    clear_model_cache()
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    (masks,) = segmenter.segment([image], [np.array([[4.0, 4.0, 40.0, 30.0]], np.float32)])
    assert masks.masks.shape == (1, 48, 64) and masks.pred_iou.shape == (1,)
    directory, digest = convert_cached("sam", official[0], tmp_path / "cache" / "converted")
    assert directory == first.directory and f":{digest}:" in first.identity
