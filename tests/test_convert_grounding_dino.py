"""Round-trip tests of the GroundingDINO key mapping, config inference and refusals (fast, tiny models).

These are circular by construction: the "official" file is written from a transformers model by this
test's own inverse mapping, so they prove the mapping is a bijection on every key, that the released
files' extras are dropped by name and anything else refused by name, not that the converted model
computes what IDEA's code computes. That is proven against IDEA's own outputs in
tests/test_parity_grounding_dino.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection, SwinConfig

from engine.models.convert.common import drop_known_extras
from engine.models.convert.grounding_dino import (
    GDINO_EXTRAS,
    convert_grounding_dino,
    infer_grounding_dino_config,
    map_grounding_dino_keys,
)

SW = "model.backbone.conv_encoder.model.swin."
MODEL_SWIN = "model.backbone.conv_encoder.model."


def tiny_config() -> GroundingDinoConfig:
    """A tiny GroundingDINO with the official non-shape constants (8 heads, shared decoder box head)."""
    backbone = SwinConfig(
        image_size=128, patch_size=4, embed_dim=16, depths=[1, 2, 1, 1], num_heads=[1, 2, 2, 4], window_size=4,
        out_indices=[2, 3, 4],
    )
    return GroundingDinoConfig(
        backbone_config=backbone,
        text_config=dict(model_type="bert", vocab_size=1100, hidden_size=32, num_hidden_layers=1, num_attention_heads=1,
                         intermediate_size=48, max_position_embeddings=64),
        num_queries=20, encoder_layers=1, decoder_layers=2, d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=40,
        encoder_attention_heads=8, decoder_attention_heads=8, encoder_n_points=2, decoder_n_points=3,
    )


_SECTIONS_INVERSE = (  # transformers section -> (official section, {transformers sub-prefix: official})
    (r"^model\.encoder\.layers\.(\d+)\.deformable_layer\.", "transformer.encoder.layers.{}.", {
        "self_attn_layer_norm.": "norm1.", "fc1.": "linear1.", "fc2.": "linear2.", "final_layer_norm.": "norm2."}),
    (r"^model\.encoder\.layers\.(\d+)\.text_enhancer_layer\.", "transformer.encoder.text_layers.{}.", {
        "fc1.": "linear1.", "fc2.": "linear2.", "layer_norm_before.": "norm1.", "layer_norm_after.": "norm2."}),
    (r"^model\.encoder\.layers\.(\d+)\.fusion_layer\.", "transformer.encoder.fusion_layers.{}.", {
        "vision_param": "gamma_v", "text_param": "gamma_l", "layer_norm_vision.": "layer_norm_v.",
        "layer_norm_text.": "layer_norm_l.", "attn.vision_proj.": "attn.v_proj.", "attn.text_proj.": "attn.l_proj.",
        "attn.values_vision_proj.": "attn.values_v_proj.", "attn.values_text_proj.": "attn.values_l_proj.",
        "attn.out_vision_proj.": "attn.out_v_proj.", "attn.out_text_proj.": "attn.out_l_proj."}),
    (r"^model\.decoder\.layers\.(\d+)\.", "transformer.decoder.layers.{}.", {
        "encoder_attn_text_layer_norm.": "catext_norm.", "encoder_attn_text.": "ca_text.",
        "encoder_attn_layer_norm.": "norm1.", "encoder_attn.": "cross_attn.", "self_attn_layer_norm.": "norm2.",
        "fc1.": "linear1.", "fc2.": "linear2.", "final_layer_norm.": "norm3."}),
)
_PLAIN_INVERSE = (
    (re.escape(SW + "embeddings.patch_embeddings.projection."), "backbone.0.patch_embed.proj."),
    (re.escape(SW + "embeddings.norm."), "backbone.0.patch_embed.norm."),
    (re.escape(SW + "encoder.layers."), "backbone.0.layers."),
    (r"\.layernorm_before\.", ".norm1."), (r"\.layernorm_after\.", ".norm2."),
    (r"\.attention\.o_proj\.", ".attn.proj."),
    (r"\.attention\.relative_position_bias\.relative_position_bias_table$", ".attn.relative_position_bias_table"),
    (re.escape(MODEL_SWIN) + r"hidden_states_norms\.stage(\d)\.", lambda m: f"backbone.0.norm{int(m.group(1)) - 1}."),
    (r"^model\.text_backbone\.", "bert."), (r"^model\.text_projection\.", "feat_map."),
    (r"^model\.input_proj_vision\.", "input_proj."), (r"^model\.level_embed$", "transformer.level_embed"),
    (r"^model\.query_position_embeddings\.", "transformer.tgt_embed."),
    (r"^model\.enc_output\.", "transformer.enc_output."), (r"^model\.enc_output_norm\.", "transformer.enc_output_norm."),
    (r"^model\.encoder_output_bbox_embed\.", "transformer.enc_out_bbox_embed."),
    (r"^model\.decoder\.layer_norm\.", "transformer.decoder.norm."),
    (r"^model\.decoder\.reference_points_head\.", "transformer.decoder.ref_point_head."),
    (r"^model\.decoder\.bbox_embed\.", "transformer.decoder.bbox_embed."),
)
_QKV = re.compile(r"^(.*)\.(attention\.[qkv]_proj|(?:self_attn|encoder_attn_text)\.(?:query|key|value))\.(weight|bias)$")


def _rename_inverse(key: str) -> str:
    for pattern, target, table in _SECTIONS_INVERSE:
        match = re.match(pattern, key)
        if match:
            rest = key[match.end():]
            for new, old in table.items():
                if rest.startswith(new):
                    rest = old + rest[len(new):]
                    break
            return target.format(match.group(1)) + rest
    for pattern, replacement in _PLAIN_INVERSE:
        key = re.sub(pattern, replacement, key)
    return key


def to_official(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """GroundingDINO's (IDEA) key layout for a transformers state dict, incl. fused projections and extras."""
    fused: dict[tuple, dict[str, torch.Tensor]] = {}
    out = {}
    for key, value in hf_state.items():
        if ".swin.layernorm." in key:
            continue  # not in the official model
        match = _QKV.match(key)
        if match:
            head, kind, param = match.groups()
            part = kind.rsplit(".", 1)[-1][0]  # q / k / v
            fused.setdefault((head, kind.rsplit(".", 1)[0], param), {})[part] = value
            continue
        out[_rename_inverse(key)] = value
    for (head, owner, param), parts in fused.items():
        merged = torch.cat([parts["q"], parts["k"], parts["v"]])
        if owner == "attention":  # Swin block
            out[_rename_inverse(f"{head}.attention.o_proj.{param}").replace(".attn.proj.", ".attn.qkv.")] = merged
        else:
            name = _rename_inverse(f"{head}.{owner}.out_proj.{param}").rsplit(".out_proj.", 1)[0]
            out[f"{name}.in_proj_{param}"] = merged
    return out


def _with_extras(state: dict, config: GroundingDinoConfig) -> dict:
    """Keys present in IDEA's released checkpoints that the converter must drop knowingly."""
    hidden = config.text_config.hidden_size
    state = dict(state)
    state["label_enc.weight"] = torch.zeros(2001, config.d_model)  # DINO's denoising label embedding
    state["bert.pooler.dense.weight"] = torch.zeros(hidden, hidden)
    state["bert.pooler.dense.bias"] = torch.zeros(hidden)
    state["bert.embeddings.position_ids"] = torch.arange(config.text_config.max_position_embeddings)[None]
    window = config.backbone_config.window_size
    state["backbone.0.layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(window**2, window**2, dtype=torch.long)
    return state


@pytest.fixture(scope="module")
def tokenizer_dir(tiny_models_dir) -> Path:
    return tiny_models_dir / "grounding_dino"


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> tuple[Path, GroundingDinoForObjectDetection, dict]:
    torch.manual_seed(0)
    config = tiny_config()
    model = GroundingDinoForObjectDetection(config).eval()
    state = _with_extras(to_official(model.state_dict()), config)
    path = tmp_path_factory.mktemp("gdino") / "groundingdino_tiny_ogc.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "optimizer": {}, "epoch": 3}, path)  # released layout
    return path, model, state


@pytest.mark.parametrize(
    "official_key, hf_key",
    [
        ("backbone.0.patch_embed.proj.weight", SW + "embeddings.patch_embeddings.projection.weight"),
        ("backbone.0.layers.0.blocks.0.attn.relative_position_bias_table",
         SW + "encoder.layers.0.blocks.0.attention.relative_position_bias.relative_position_bias_table"),
        ("backbone.0.layers.1.blocks.1.attn.proj.bias", SW + "encoder.layers.1.blocks.1.attention.o_proj.bias"),
        ("backbone.0.layers.1.downsample.reduction.weight", SW + "encoder.layers.1.downsample.reduction.weight"),
        ("backbone.0.layers.2.blocks.0.mlp.fc1.weight", SW + "encoder.layers.2.blocks.0.mlp.fc1.weight"),
        ("backbone.0.norm1.weight", MODEL_SWIN + "hidden_states_norms.stage2.weight"),
        ("backbone.0.norm3.bias", MODEL_SWIN + "hidden_states_norms.stage4.bias"),
        ("bert.encoder.layer.0.attention.self.query.weight", "model.text_backbone.encoder.layer.0.attention.self.query.weight"),
        ("feat_map.weight", "model.text_projection.weight"),
        ("input_proj.3.1.bias", "model.input_proj_vision.3.1.bias"),
        ("transformer.level_embed", "model.level_embed"),
        ("transformer.tgt_embed.weight", "model.query_position_embeddings.weight"),
        ("transformer.enc_output_norm.weight", "model.enc_output_norm.weight"),
        ("transformer.encoder.layers.0.self_attn.sampling_offsets.weight",
         "model.encoder.layers.0.deformable_layer.self_attn.sampling_offsets.weight"),
        ("transformer.encoder.layers.0.norm2.bias", "model.encoder.layers.0.deformable_layer.final_layer_norm.bias"),
        ("transformer.encoder.text_layers.0.norm2.bias", "model.encoder.layers.0.text_enhancer_layer.layer_norm_after.bias"),
        ("transformer.encoder.text_layers.0.self_attn.out_proj.weight",
         "model.encoder.layers.0.text_enhancer_layer.self_attn.out_proj.weight"),
        ("transformer.encoder.fusion_layers.0.gamma_v", "model.encoder.layers.0.fusion_layer.vision_param"),
        ("transformer.encoder.fusion_layers.0.attn.values_l_proj.weight",
         "model.encoder.layers.0.fusion_layer.attn.values_text_proj.weight"),
        ("transformer.decoder.layers.1.catext_norm.weight", "model.decoder.layers.1.encoder_attn_text_layer_norm.weight"),
        ("transformer.decoder.layers.0.cross_attn.attention_weights.bias", "model.decoder.layers.0.encoder_attn.attention_weights.bias"),
        ("transformer.decoder.layers.0.norm3.weight", "model.decoder.layers.0.final_layer_norm.weight"),
        ("transformer.decoder.norm.weight", "model.decoder.layer_norm.weight"),
        ("transformer.decoder.ref_point_head.layers.1.weight", "model.decoder.reference_points_head.layers.1.weight"),
        ("transformer.decoder.bbox_embed.1.layers.2.bias", "model.decoder.bbox_embed.1.layers.2.bias"),
        ("transformer.enc_out_bbox_embed.layers.2.bias", "model.encoder_output_bbox_embed.layers.2.bias"),
        ("bbox_embed.1.layers.0.weight", "bbox_embed.1.layers.0.weight"),
    ],
)
def test_official_names_map_to_transformers_names(official, official_key, hf_key):
    state = official[2]
    assert official_key in state  # the fixture really has IDEA's layout
    assert map_grounding_dino_keys({official_key: state[official_key]}) == {hf_key: state[official_key]}


@pytest.mark.parametrize(
    "fused_key, hf_key, rows",
    [
        ("backbone.0.layers.0.blocks.0.attn.qkv.bias", SW + "encoder.layers.0.blocks.0.attention.v_proj.bias", slice(32, 48)),
        ("transformer.decoder.layers.0.ca_text.in_proj_weight", "model.decoder.layers.0.encoder_attn_text.key.weight", slice(32, 64)),
        ("transformer.encoder.text_layers.0.self_attn.in_proj_bias",
         "model.encoder.layers.0.text_enhancer_layer.self_attn.query.bias", slice(0, 32)),
        ("transformer.decoder.layers.1.self_attn.in_proj_weight", "model.decoder.layers.1.self_attn.value.weight", slice(64, 96)),
    ],
)
def test_fused_projections_are_split_in_qkv_order(official, fused_key, hf_key, rows):
    fused = official[2][fused_key]
    assert torch.equal(map_grounding_dino_keys({fused_key: fused})[hf_key], fused[rows])


def test_config_inferred_from_shapes(official):
    config = infer_grounding_dino_config("x.pth", official[2])
    expected = tiny_config()
    for name in ("d_model", "num_queries", "encoder_layers", "decoder_layers", "encoder_ffn_dim", "decoder_ffn_dim",
                 "encoder_n_points", "decoder_n_points", "num_feature_levels", "decoder_bbox_embed_share"):
        assert getattr(config, name) == getattr(expected, name), name
    for name in ("embed_dim", "depths", "num_heads", "window_size", "out_indices"):
        assert list(np.atleast_1d(getattr(config.backbone_config, name))) == list(np.atleast_1d(getattr(expected.backbone_config, name)))


def test_swin_b_layout_inferred_from_shapes():
    """IDEA's groundingdino_swinb_cogcoor.pth layout (Swin-B, window 12, full BERT), on meta tensors."""
    config = GroundingDinoConfig(backbone_config=SwinConfig(
        image_size=384, embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12, out_indices=[2, 3, 4]))
    with torch.device("meta"):
        model = GroundingDinoForObjectDetection(config)
    inferred = infer_grounding_dino_config("groundingdino_swinb_cogcoor.pth", to_official(model.state_dict(keep_vars=True)))
    swin = inferred.backbone_config
    assert (swin.embed_dim, list(swin.depths), list(swin.num_heads), swin.window_size) == (128, [2, 2, 18, 2], [4, 8, 16, 32], 12)
    assert (inferred.text_config.hidden_size, inferred.text_config.num_attention_heads, inferred.decoder_bbox_embed_share) == (768, 12, True)


@pytest.mark.parametrize(
    "key, dropped",
    [
        ("label_enc.weight", True),  # in both released files (2001 x 256)
        ("bert.embeddings.position_ids", True),
        ("bert.pooler.dense.weight", True),
        ("bert.pooler.dense.bias", True),
        ("backbone.0.layers.2.blocks.5.attn.relative_position_index", True),
        ("label_enc.bias", False),  # near misses are not extras: refused as unexpected keys
        ("transformer.label_enc.weight", False),
        ("bert.pooler.activation.weight", False),
        ("backbone.0.layers.0.blocks.0.attn.relative_position_bias_table", False),
    ],
)
def test_known_extras_are_dropped_by_exact_name(key, dropped):
    assert (key not in drop_known_extras({key: torch.zeros(1)}, GDINO_EXTRAS)) is dropped


def test_round_trip_through_our_inverse_mapping_gives_identical_weights_and_outputs(official, tokenizer_dir, tmp_path):
    path, reference, _ = official
    out = convert_grounding_dino(path, tmp_path / "out", tokenizer=str(tokenizer_dir))
    converted = GroundingDinoForObjectDetection.from_pretrained(out).eval()
    ours, theirs = converted.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys()
    differing = [k for k in theirs if not torch.equal(ours[k], theirs[k])]
    assert all(".swin.layernorm." in k for k in differing)  # unused by the backbone, filled with its init
    tokens = AutoTokenizer.from_pretrained(out)(["red car."], return_tensors="pt")
    torch.manual_seed(1)
    pixels = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        a = converted(pixel_values=pixels, **tokens)
        b = reference(pixel_values=pixels, **tokens)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.pred_boxes, b.pred_boxes)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", r"missing keys \(1\): model\.decoder\.layers\.1\.fc2\.bias"),
        ("unexpected", r"unexpected keys \(1\): transformer\.extra\.weight"),
        ("shape", r"mismatched shapes \(1\): model\.enc_output\.bias: checkpoint \(31,\) vs model \(32,\)"),
        ("layout", r"missing keys \['feat_map\.weight'\]"),
        ("near_miss", r"unexpected keys \(1\): label_enc\.bias"),
    ],
)
def test_corrupted_checkpoint_is_refused_naming_the_keys(official, tokenizer_dir, tmp_path, kind, message):
    state = dict(official[2])
    if kind == "missing":
        del state["transformer.decoder.layers.1.linear2.bias"]
    elif kind == "unexpected":
        state["transformer.extra.weight"] = torch.zeros(2)
    elif kind == "shape":
        state["transformer.enc_output.bias"] = torch.zeros(31)
    elif kind == "near_miss":
        state["label_enc.bias"] = torch.zeros(32)
    else:
        del state["feat_map.weight"]
    bad = tmp_path / f"bad_{kind}.pth"
    torch.save({"model": state}, bad)
    with pytest.raises(ValueError, match=rf"bad_{kind}\.pth.*{message}"):
        convert_grounding_dino(bad, tmp_path / "out", tokenizer=str(tokenizer_dir))


def test_absent_tokenizer_gives_a_clear_message(official, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.delenv("SODFORGE_BERT_TOKENIZER", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    with pytest.raises(ValueError, match=r"groundingdino_tiny_ogc\.pth.*bert-base-uncased tokenizer.*SODFORGE_BERT_TOKENIZER"):
        convert_grounding_dino(official[0], tmp_path / "out", tokenizer=str(tmp_path / "no-such-dir"))


def test_registry_converts_once_and_detects(official, tokenizer_dir, tmp_path, monkeypatch):
    from engine.models.registry import clear_model_cache, load_model, resolve_source
    from engine.models.runtime import resolve_runtime
    from engine.params import ModelSpec

    monkeypatch.setenv("SODFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SODFORGE_BERT_TOKENIZER", str(tokenizer_dir))
    spec = ModelSpec("grounding_dino", str(official[0]))
    resolved = resolve_source(spec)
    assert re.fullmatch(r"grounding_dino:pth:[0-9a-f]{32}:c\d+;numerics=idea", resolved.identity)
    assert resolve_source(spec) == resolved
    clear_model_cache()
    grounder = load_model(spec, resolve_runtime("cpu", "fp32"))
    clear_model_cache()
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    (detections,) = grounder.detect([image], ["red car"], box_threshold=0.0, text_threshold=0.0)
    assert detections.boxes_xyxy.shape[1] == 4 and len(detections) > 0
    assert (detections.boxes_xyxy[:, [0, 2]] <= 64).all() and (detections.boxes_xyxy[:, [1, 3]] <= 48).all()
