"""Meta's segment-anything checkpoints (``sam_vit_{b,l,h}_*.pth``) -> transformers ``SamModel``.

The variant is read from the tensors' shapes (width, depth, heads from the relative position
tables, window size, which blocks attend globally), so vit_b / vit_l / vit_h and any other
layout of the same family convert without a name. Key mapping (official -> transformers), learnt
from transformers' ``convert_sam_to_hf.py`` and checked against ``SamModel.state_dict()``:

* ``image_encoder.`` -> ``vision_encoder.``; ``blocks.N`` -> ``layers.N``; ``normK`` -> ``layer_normK``;
  ``patch_embed.proj`` -> ``patch_embed.projection``; ``neck.{0,1,2,3}`` -> ``neck.{conv1,layer_norm1,conv2,layer_norm2}``
* ``prompt_encoder.pe_layer.positional_encoding_gaussian_matrix`` -> ``prompt_encoder.shared_embedding.positional_embedding``
  (and a copy into ``shared_image_embedding.positional_embedding``); ``point_embeddings`` -> ``point_embed``;
  ``mask_downscaling.{0,1,3,4,6}`` -> ``mask_embed.{conv1,layer_norm1,conv2,layer_norm2,conv3}``
* ``mask_decoder.output_upscaling.{0,1,3}`` -> ``upscale_conv1, upscale_layer_norm, upscale_conv2``;
  ``norm_final_attn`` -> ``layer_norm_final_attn``; MLP heads ``layers.{0..d-1}`` -> ``proj_in, layers.{0..d-3}, proj_out``

Known extras dropped: ``pixel_mean`` / ``pixel_std`` (constants the processor applies; Meta's
released files do not carry them, other exports do). Anything else left over, missing, or of another
shape is refused with a ValueError naming the keys.

Numerics: the converted config sets ``mask_decoder_config.layer_norm_eps = 1e-5``
(:data:`OFFICIAL_DECODER_LAYER_NORM_EPS`). In transformers that value is used only by the two-way
transformer's ``layer_norm1..4``, which segment-anything builds as ``nn.LayerNorm`` with the default
eps 1e-5; transformers' default 1e-6 moves low-res mask logits by up to 2e-4 against the official
code, 1e-5 brings them to 1e-5 (tests/test_parity_sam.py). Every other SAM LayerNorm already has the
official eps (1e-6 in the ViT, neck, mask downscaling and output upscaling; 1e-5 in ``norm_final_attn``).
Hugging Face ``facebook/sam-vit-*`` directories are loaded as published (1e-6): the difference is
below mask noise (a few dozen boundary pixels in a megapixel) and not worth a second override.
"""

from __future__ import annotations

import re
from pathlib import Path

from engine.models.convert.common import (
    Tensors,
    count_indices,
    drop_known_extras,
    load_checkpoint,
    rename,
    require,
    save_converted,
)

SAM_EXTRAS = (r"^pixel_mean$", r"^pixel_std$")
MASK_DECODER_HEADS = 8  # not visible in shapes; 8 in every official SAM
OFFICIAL_DECODER_LAYER_NORM_EPS = 1e-5  # segment-anything's TwoWayAttentionBlock norms (nn.LayerNorm default)
_RULES = (
    (r"^image_encoder\.", "vision_encoder."),
    (r"^vision_encoder\.blocks\.", "vision_encoder.layers."),
    (r"^vision_encoder\.patch_embed\.proj\.", "vision_encoder.patch_embed.projection."),
    (r"^vision_encoder\.neck\.0\.", "vision_encoder.neck.conv1."),
    (r"^vision_encoder\.neck\.1\.", "vision_encoder.neck.layer_norm1."),
    (r"^vision_encoder\.neck\.2\.", "vision_encoder.neck.conv2."),
    (r"^vision_encoder\.neck\.3\.", "vision_encoder.neck.layer_norm2."),
    (r"\.norm(\d)\.", r".layer_norm\1."),
    (r"\.norm_final_attn\.", ".layer_norm_final_attn."),
    (r"^prompt_encoder\.pe_layer\.positional_encoding_gaussian_matrix$", "prompt_encoder.shared_embedding.positional_embedding"),
    (r"^prompt_encoder\.point_embeddings\.", "prompt_encoder.point_embed."),
    (r"^prompt_encoder\.mask_downscaling\.0\.", "prompt_encoder.mask_embed.conv1."),
    (r"^prompt_encoder\.mask_downscaling\.1\.", "prompt_encoder.mask_embed.layer_norm1."),
    (r"^prompt_encoder\.mask_downscaling\.3\.", "prompt_encoder.mask_embed.conv2."),
    (r"^prompt_encoder\.mask_downscaling\.4\.", "prompt_encoder.mask_embed.layer_norm2."),
    (r"^prompt_encoder\.mask_downscaling\.6\.", "prompt_encoder.mask_embed.conv3."),
    (r"^mask_decoder\.output_upscaling\.0\.", "mask_decoder.upscale_conv1."),
    (r"^mask_decoder\.output_upscaling\.1\.", "mask_decoder.upscale_layer_norm."),
    (r"^mask_decoder\.output_upscaling\.3\.", "mask_decoder.upscale_conv2."),
)
_MLP = re.compile(r"^(mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))\.layers\.(\d+)\.(.+)$")


def _mlp_name(prefix: str, index: int, depth: int, rest: str) -> str:
    if index == 0:
        return f"{prefix}.proj_in.{rest}"
    if index == depth - 1:
        return f"{prefix}.proj_out.{rest}"
    return f"{prefix}.layers.{index - 1}.{rest}"


def map_sam_keys(state: Tensors) -> Tensors:
    """Rename an official SAM state dict (extras already dropped) into ``SamModel`` keys."""
    depth = count_indices(state, r"^mask_decoder\.iou_prediction_head\.layers\.(\d+)\.")
    hyper_depth = count_indices(state, r"^mask_decoder\.output_hypernetworks_mlps\.0\.layers\.(\d+)\.")
    out: Tensors = {}
    for key, value in state.items():
        match = _MLP.match(key)
        if match:
            prefix, index, rest = match.group(1), int(match.group(2)), match.group(3)
            key = _mlp_name(prefix, index, depth if prefix.endswith("iou_prediction_head") else hyper_depth, rest)
        else:
            key = rename(key, _RULES)
        out[key] = value
    shared = "prompt_encoder.shared_embedding.positional_embedding"
    if shared in out:
        out["shared_image_embedding.positional_embedding"] = out[shared]
    return out


def _vision_config(path: Path, state: Tensors) -> dict:
    prefix = "image_encoder."
    require(path, state, f"{prefix}patch_embed.proj.weight", f"{prefix}pos_embed", f"{prefix}neck.0.weight",
            f"{prefix}blocks.0.attn.rel_pos_h", f"{prefix}blocks.0.mlp.lin1.weight")
    hidden, channels, patch, _ = state[f"{prefix}patch_embed.proj.weight"].shape
    grid = state[f"{prefix}pos_embed"].shape[1]
    layers = count_indices(state, r"^image_encoder\.blocks\.(\d+)\.")
    head_dim = state[f"{prefix}blocks.0.attn.rel_pos_h"].shape[1]
    global_indexes, windows = [], set()
    for index in range(layers):
        require(path, state, f"{prefix}blocks.{index}.attn.rel_pos_h")
        length = state[f"{prefix}blocks.{index}.attn.rel_pos_h"].shape[0]
        if length == 2 * grid - 1:
            global_indexes.append(index)
        else:
            windows.add((length + 1) // 2)
    if len(windows) > 1:
        raise ValueError(f"{path}: blocks use several window sizes {sorted(windows)}; not a SAM image encoder")
    return dict(
        hidden_size=int(hidden), num_channels=int(channels), patch_size=int(patch), image_size=int(grid * patch),
        num_hidden_layers=layers, num_attention_heads=int(hidden // head_dim),
        mlp_dim=int(state[f"{prefix}blocks.0.mlp.lin1.weight"].shape[0]),
        output_channels=int(state[f"{prefix}neck.0.weight"].shape[0]),
        window_size=windows.pop() if windows else 14, global_attn_indexes=global_indexes,
        qkv_bias=f"{prefix}blocks.0.attn.qkv.bias" in state,
        num_pos_feats=int(state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"].shape[1]),
    )


def infer_sam_config(path: str | Path, state: Tensors, mask_decoder_heads: int = MASK_DECODER_HEADS):
    """A ``SamConfig`` whose shapes match the official state dict ``state`` (read from ``path``)."""
    from transformers import SamConfig

    path = Path(path)
    require(path, state, "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
            "prompt_encoder.point_embeddings.0.weight", "prompt_encoder.mask_downscaling.3.weight",
            "mask_decoder.mask_tokens.weight", "mask_decoder.transformer.layers.0.self_attn.q_proj.weight",
            "mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight",
            "mask_decoder.transformer.layers.0.mlp.lin1.weight", "mask_decoder.iou_prediction_head.layers.0.weight")
    vision = _vision_config(path, state)
    prompt_hidden = int(state["prompt_encoder.point_embeddings.0.weight"].shape[1])
    decoder_hidden = int(state["mask_decoder.transformer.layers.0.self_attn.q_proj.weight"].shape[1])
    cross_dim = int(state["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"].shape[0])
    return SamConfig(
        vision_config=vision,
        prompt_encoder_config=dict(
            hidden_size=prompt_hidden, image_size=vision["image_size"], patch_size=vision["patch_size"],
            mask_input_channels=int(state["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
            num_point_embeddings=count_indices(state, r"^prompt_encoder\.point_embeddings\.(\d+)\."),
        ),
        mask_decoder_config=dict(
            hidden_size=decoder_hidden, num_attention_heads=mask_decoder_heads,
            num_hidden_layers=count_indices(state, r"^mask_decoder\.transformer\.layers\.(\d+)\."),
            mlp_dim=int(state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]),
            attention_downsample_rate=max(1, decoder_hidden // cross_dim),
            num_multimask_outputs=int(state["mask_decoder.mask_tokens.weight"].shape[0]) - 1,
            iou_head_depth=count_indices(state, r"^mask_decoder\.iou_prediction_head\.layers\.(\d+)\."),
            iou_head_hidden_dim=int(state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
            layer_norm_eps=OFFICIAL_DECODER_LAYER_NORM_EPS,
        ),
    )


def sam_processor(image_size: int):
    """A ``SamProcessor`` for the model's input size (1024 for every official SAM)."""
    from transformers import SamImageProcessorPil, SamProcessor

    image_processor = SamImageProcessorPil(
        size={"longest_edge": image_size}, pad_size={"height": image_size, "width": image_size},
        mask_size={"longest_edge": image_size // 4}, mask_pad_size={"height": image_size // 4, "width": image_size // 4},
    )
    return SamProcessor(image_processor=image_processor)


def convert_sam(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Convert an official SAM checkpoint into ``out_dir`` (``save_pretrained`` model + processor).

    Raises ValueError naming the file and the missing / unexpected / mismatched keys when the
    checkpoint is not a complete SAM state dict.
    """
    from transformers import SamModel

    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    state = drop_known_extras(load_checkpoint(checkpoint), SAM_EXTRAS)
    config = infer_sam_config(checkpoint, state)
    save_converted(SamModel, config, map_sam_keys(state), checkpoint, out_dir)
    sam_processor(config.vision_config.image_size).save_pretrained(out_dir)
    return out_dir
