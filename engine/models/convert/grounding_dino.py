"""IDEA's GroundingDINO checkpoints (``groundingdino_swint_ogc.pth``, ``..._swinb_...``) -> transformers.

The file holds ``{"model": state_dict, ...}``; its keys (``module.``-prefixed in the released files;
the prefix is removed) are ``backbone.0.*`` (Swin), ``bert.*`` (bert-base-uncased), ``feat_map``,
``input_proj``, ``transformer.*`` and ``bbox_embed`` (the decoder's shared box head, stored twice).
The layout (Swin-T / Swin-B, layer counts, widths) is read from the shapes. Key mapping learnt from
transformers' ``convert_grounding_dino_to_hf.py`` and checked against
``GroundingDinoForObjectDetection.state_dict()`` of the installed transformers: fused ``qkv`` /
``in_proj`` projections are split into query / key / value; the rest is renamed section by section.

Known extras dropped by name (:data:`GDINO_EXTRAS`; documented, not silent), all present in IDEA's
released ``groundingdino_swint_ogc.pth`` and ``groundingdino_swinb_cogcoor.pth``:

* ``label_enc.weight`` (2001 x 256): DINO's contrastive-denoising label embedding, used only in
  training (IDEA's own ``load_model`` reports it as an unexpected key);
* ``bert.embeddings.position_ids`` (1 x 512): a buffer ``arange(512)`` older BERT code saved;
* ``bert.pooler.*``: BERT's pooler, never used by GroundingDINO and absent from transformers' text backbone;
* Swin ``attn.relative_position_index``: a derived buffer that transformers recomputes.

Target keys filled with their initial values: ``swin.layernorm.*`` (not used by the Swin backbone's
outputs; transformers itself ignores them when loading). Anything else, missing or of another shape
is refused with a ValueError naming the keys.

The processor needs the bert-base-uncased tokenizer: from ``tokenizer`` (a local directory or a
Hugging Face id found in the local cache), else ``SODFORGE_BERT_TOKENIZER``, else a
``bert-base-uncased/`` directory beside the checkpoint.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import torch

from engine.models.convert.common import (
    Tensors,
    count_indices,
    drop_known_extras,
    load_checkpoint,
    rename,
    require,
    save_converted,
    split_rows,
)

GDINO_EXTRAS = (
    r"^label_enc\.weight$",
    r"^bert\.pooler\.dense\.(weight|bias)$",
    r"^bert\.embeddings\.position_ids$",
    r"^backbone\.0\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index$",
)
UNUSED_TARGETS = (r"\.swin\.layernorm\.",)
HEADS = 8  # not visible in shapes; 8 in both official configs (text enhancer and fusion use 8 // 2)
SWIN = "model.backbone.conv_encoder.model.swin."

_SWIN_RULES = (
    (r"^backbone\.0\.norm(\d+)\.", lambda m: f"model.backbone.conv_encoder.model.hidden_states_norms.stage{int(m.group(1)) + 1}."),
    (r"^backbone\.0\.patch_embed\.proj\.", SWIN + "embeddings.patch_embeddings.projection."),
    (r"^backbone\.0\.patch_embed\.norm\.", SWIN + "embeddings.norm."),
    (r"^backbone\.0\.layers\.(\d+)\.", SWIN + r"encoder.layers.\1."),
    (r"(\.blocks\.\d+)\.norm1\.", r"\1.layernorm_before."),
    (r"(\.blocks\.\d+)\.norm2\.", r"\1.layernorm_after."),
    (r"\.attn\.(q|k|v)_proj\.", r".attention.\1_proj."),
    (r"\.attn\.proj\.", ".attention.o_proj."),
    (r"\.attn\.relative_position_bias_table$", ".attention.relative_position_bias.relative_position_bias_table"),
)
# (section pattern, target prefix, {source sub-prefix: target sub-prefix})
_SECTIONS = (
    (r"^transformer\.encoder\.layers\.(\d+)\.", "model.encoder.layers.{}.deformable_layer.", {
        "norm1.": "self_attn_layer_norm.", "linear1.": "fc1.", "linear2.": "fc2.", "norm2.": "final_layer_norm.",
    }),
    (r"^transformer\.encoder\.text_layers\.(\d+)\.", "model.encoder.layers.{}.text_enhancer_layer.", {
        "linear1.": "fc1.", "linear2.": "fc2.", "norm1.": "layer_norm_before.", "norm2.": "layer_norm_after.",
    }),
    (r"^transformer\.encoder\.fusion_layers\.(\d+)\.", "model.encoder.layers.{}.fusion_layer.", {
        "gamma_v": "vision_param", "gamma_l": "text_param", "layer_norm_v.": "layer_norm_vision.",
        "layer_norm_l.": "layer_norm_text.", "attn.v_proj.": "attn.vision_proj.", "attn.l_proj.": "attn.text_proj.",
        "attn.values_v_proj.": "attn.values_vision_proj.", "attn.values_l_proj.": "attn.values_text_proj.",
        "attn.out_v_proj.": "attn.out_vision_proj.", "attn.out_l_proj.": "attn.out_text_proj.",
    }),
    (r"^transformer\.decoder\.layers\.(\d+)\.", "model.decoder.layers.{}.", {
        "cross_attn.": "encoder_attn.", "norm1.": "encoder_attn_layer_norm.", "ca_text.": "encoder_attn_text.",
        "catext_norm.": "encoder_attn_text_layer_norm.", "norm2.": "self_attn_layer_norm.", "linear1.": "fc1.",
        "linear2.": "fc2.", "norm3.": "final_layer_norm.",
    }),
)
_PLAIN = (
    (r"^bert\.", "model.text_backbone."),
    (r"^feat_map\.", "model.text_projection."),
    (r"^input_proj\.", "model.input_proj_vision."),
    (r"^transformer\.level_embed$", "model.level_embed"),
    (r"^transformer\.tgt_embed\.", "model.query_position_embeddings."),
    (r"^transformer\.enc_output\.", "model.enc_output."),
    (r"^transformer\.enc_output_norm\.", "model.enc_output_norm."),
    (r"^transformer\.enc_out_bbox_embed\.", "model.encoder_output_bbox_embed."),
    (r"^transformer\.decoder\.norm\.", "model.decoder.layer_norm."),
    (r"^transformer\.decoder\.ref_point_head\.", "model.decoder.reference_points_head."),
    (r"^transformer\.decoder\.bbox_embed\.", "model.decoder.bbox_embed."),
)
_FUSED = re.compile(r"^(.*)\.(attn\.qkv|self_attn\.in_proj|ca_text\.in_proj)[._](weight|bias)$")


def _split_fused(state: Tensors) -> Tensors:
    """Swin ``attn.qkv`` -> ``attn.{q,k,v}_proj``; ``nn.MultiheadAttention`` ``in_proj`` -> ``query/key/value``."""
    out: Tensors = {}
    for key, value in state.items():
        match = _FUSED.match(key)
        if not match:
            out[key] = value
            continue
        head, kind, param = match.groups()
        names = ("attn.q_proj", "attn.k_proj", "attn.v_proj") if kind == "attn.qkv" else tuple(
            f"{kind.split('.')[0]}.{n}" for n in ("query", "key", "value"))
        for name, part in zip(names, split_rows(value), strict=True):
            out[f"{head}.{name}.{param}"] = part
    return out


def _map_key(key: str) -> str:
    if key.startswith("backbone.0."):
        return rename(key, _SWIN_RULES)
    for pattern, target, table in _SECTIONS:
        match = re.match(pattern, key)
        if match:
            rest = key[match.end():]
            for old, new in table.items():
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            return target.format(match.group(1)) + rest
    return rename(key, _PLAIN)


def map_grounding_dino_keys(state: Tensors) -> Tensors:
    """Rename an official GroundingDINO state dict (extras dropped) into transformers keys."""
    return {_map_key(key): value for key, value in _split_fused(state).items()}


def _swin_config(path: Path, state: Tensors):
    from transformers import SwinConfig

    require(path, state, "backbone.0.patch_embed.proj.weight", "backbone.0.layers.0.blocks.0.mlp.fc1.weight")
    embed_dim, channels, patch, _ = state["backbone.0.patch_embed.proj.weight"].shape
    stages = count_indices(state, r"^backbone\.0\.layers\.(\d+)\.")
    depths = [count_indices(state, rf"^backbone\.0\.layers\.{i}\.blocks\.(\d+)\.") for i in range(stages)]
    tables = [f"backbone.0.layers.{i}.blocks.0.attn.relative_position_bias_table" for i in range(stages)]
    require(path, state, *tables)
    window = (math.isqrt(int(state[tables[0]].shape[0])) + 1) // 2
    out_indices = [i + 1 for i in range(stages) if f"backbone.0.norm{i}.weight" in state]
    return SwinConfig(
        image_size=window * 32, patch_size=int(patch), num_channels=int(channels), embed_dim=int(embed_dim),
        depths=depths, num_heads=[int(state[t].shape[1]) for t in tables], window_size=window,
        mlp_ratio=state["backbone.0.layers.0.blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        qkv_bias="backbone.0.layers.0.blocks.0.attn.qkv.bias" in state, out_indices=out_indices,
    )


def _shared(state: Tensors, prefix: str, count: int) -> bool:
    """Whether ``{prefix}{i}.*`` for i < count all hold the same values as ``{prefix}0.*``."""
    first = {k[len(f"{prefix}0."):]: v for k, v in state.items() if k.startswith(f"{prefix}0.")}

    def same(v: torch.Tensor, other: torch.Tensor | None) -> bool:  # one object (an alias), or equal values
        return other is v or (other is not None and other.shape == v.shape and torch.equal(v, other))

    return all(same(v, state.get(f"{prefix}{i}.{name}")) for i in range(1, count) for name, v in first.items())


def infer_grounding_dino_config(path: str | Path, state: Tensors, text_heads: int | None = None):
    """A ``GroundingDinoConfig`` whose shapes match the official state dict ``state``."""
    from transformers import GroundingDinoConfig

    path = Path(path)
    words = "bert.embeddings.word_embeddings.weight"
    require(path, state, words, "bert.embeddings.position_embeddings.weight", "bert.embeddings.token_type_embeddings.weight",
            "bert.encoder.layer.0.intermediate.dense.weight", "feat_map.weight", "transformer.level_embed",
            "transformer.tgt_embed.weight", "transformer.encoder.layers.0.linear1.weight",
            "transformer.encoder.layers.0.self_attn.sampling_offsets.weight",
            "transformer.decoder.layers.0.linear1.weight", "transformer.decoder.layers.0.cross_attn.sampling_offsets.weight")
    vocab, text_hidden = state[words].shape
    levels, d_model = state["transformer.level_embed"].shape
    decoder_layers = count_indices(state, r"^transformer\.decoder\.layers\.(\d+)\.")
    points = {
        part: int(state[f"transformer.{part}.layers.0.{attn}.sampling_offsets.weight"].shape[0]) // (HEADS * levels * 2)
        for part, attn in (("encoder", "self_attn"), ("decoder", "cross_attn"))
    }
    return GroundingDinoConfig(
        backbone_config=_swin_config(path, state),
        text_config=dict(
            model_type="bert", vocab_size=int(vocab), hidden_size=int(text_hidden),
            num_hidden_layers=count_indices(state, r"^bert\.encoder\.layer\.(\d+)\."),
            num_attention_heads=text_heads or max(1, int(text_hidden) // 64),
            intermediate_size=int(state["bert.encoder.layer.0.intermediate.dense.weight"].shape[0]),
            max_position_embeddings=int(state["bert.embeddings.position_embeddings.weight"].shape[0]),
            type_vocab_size=int(state["bert.embeddings.token_type_embeddings.weight"].shape[0]),
        ),
        d_model=int(d_model), num_feature_levels=int(levels), num_queries=int(state["transformer.tgt_embed.weight"].shape[0]),
        encoder_layers=count_indices(state, r"^transformer\.encoder\.layers\.(\d+)\."), decoder_layers=decoder_layers,
        encoder_ffn_dim=int(state["transformer.encoder.layers.0.linear1.weight"].shape[0]),
        decoder_ffn_dim=int(state["transformer.decoder.layers.0.linear1.weight"].shape[0]),
        encoder_attention_heads=HEADS, decoder_attention_heads=HEADS,
        encoder_n_points=points["encoder"], decoder_n_points=points["decoder"],
        decoder_bbox_embed_share=_shared(state, "bbox_embed.", decoder_layers),
    )


def load_bert_tokenizer(checkpoint: Path, tokenizer: str | None = None):
    """The bert-base-uncased tokenizer, offline; ValueError saying where to put it when absent."""
    from transformers import AutoTokenizer

    candidates = [tokenizer, os.environ.get("SODFORGE_BERT_TOKENIZER"), checkpoint.parent / "bert-base-uncased", "bert-base-uncased"]
    tried = []
    for candidate in (c for c in candidates if c):
        if isinstance(candidate, Path) and not candidate.is_dir():
            continue
        try:
            return AutoTokenizer.from_pretrained(str(candidate), local_files_only=True)
        except (OSError, ValueError) as err:
            tried.append(f"{candidate} ({type(err).__name__})")
    raise ValueError(
        f"{checkpoint}: the GroundingDINO processor needs the bert-base-uncased tokenizer, found none "
        f"(tried {', '.join(tried)}). Run `hf download bert-base-uncased` on a machine with "
        "internet, or set SODFORGE_BERT_TOKENIZER to a directory holding its vocab.txt / tokenizer files."
    )


def convert_grounding_dino(checkpoint: str | Path, out_dir: str | Path, tokenizer: str | None = None) -> Path:
    """Convert an official GroundingDINO checkpoint into ``out_dir`` (model + processor).

    Raises ValueError naming the file and the missing / unexpected / mismatched keys.
    """
    from transformers import (
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
    )

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    state = drop_known_extras(load_checkpoint(checkpoint, nested_key="model"), GDINO_EXTRAS)
    config = infer_grounding_dino_config(checkpoint, state)
    bert_tokenizer = load_bert_tokenizer(checkpoint, tokenizer)
    if len(bert_tokenizer) > config.text_config.vocab_size:
        raise ValueError(f"{checkpoint}: tokenizer has {len(bert_tokenizer)} tokens, the text backbone only {config.text_config.vocab_size}")
    save_converted(GroundingDinoForObjectDetection, config, map_grounding_dino_keys(state), checkpoint, out_dir,
                   fill=lambda key: any(re.search(p, key) for p in UNUSED_TARGETS))
    GroundingDinoProcessor(image_processor=GroundingDinoImageProcessorPil(), tokenizer=bert_tokenizer).save_pretrained(out_dir)
    return out_dir
