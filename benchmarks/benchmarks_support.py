"""Real-size, randomly initialised labelling models for benchmarks (random weights have the real speed).

BLIP-large captioner, GroundingDINO Swin-T, SAM ViT-H: built from their published configurations
directly on the device (no download, no disk), then placed and wrapped exactly as the registry's
loaders do (bf16 weights on CUDA with the fp32 islands, SDPA where available, optional compile).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from engine.labeling import LabelModels
from engine.models.adapters.blip import build_captioner
from engine.models.adapters.common import place
from engine.models.adapters.grounding_dino import box_heads, build_grounder
from engine.models.adapters.sam import build_segmenter, fourier_features
from engine.models.runtime import resolve_runtime


def bert_tokenizer(workdir: Path, size: int, dec_token: bool):
    """A bert-base-sized vocabulary (special tokens at bert-base-uncased ids) built offline."""
    from transformers import BertTokenizer

    from engine.models.tiny import _FIXED_IDS, _pseudo_words

    syllables = _pseudo_words()
    words = iter(syllables + [a + b for a in syllables[:400] for b in syllables[:400]])
    vocab = [_FIXED_IDS.get(i) or next(words) for i in range(size - (1 if dec_token else 0))]
    vocab += ["[DEC]"] if dec_token else []
    path = workdir / f"vocab-{size}.txt"
    path.write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(path), do_lower_case=True)
    if dec_token:
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    return tokenizer


def _build(cls, config, device: torch.device):
    with torch.device(device):  # initialise on the GPU: seconds instead of minutes on CPU
        try:  # as engine.models.adapters.common.from_pretrained: SDPA where the model has it
            return cls._from_config(copy.deepcopy(config), attn_implementation="sdpa", dtype=torch.float32)
        except (ValueError, ImportError):
            return cls._from_config(copy.deepcopy(config), dtype=torch.float32)


def real_models(workdir: Path, device: str, compile: bool = False) -> LabelModels:
    """BLIP-large / GroundingDINO Swin-T / SAM ViT-H with random weights on ``device``."""
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
        SamConfig,
        SamImageProcessorPil,
        SamModel,
        SamProcessor,
        SwinConfig,
    )

    runtime = resolve_runtime(device, "auto", compile)
    blip_config = BlipConfig(
        text_config=dict(vocab_size=30524, bos_token_id=30523, pad_token_id=0, sep_token_id=102, eos_token_id=102),
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           image_size=384, patch_size=16, initializer_range=0.02),
    )
    swin = SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7, out_indices=[2, 3, 4])
    sam_config = SamConfig(vision_config=dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16,
                                              global_attn_indexes=[7, 15, 23, 31], initializer_range=0.02))
    blip = place(_build(BlipForConditionalGeneration, blip_config, runtime.device), runtime)
    gdino = place(_build(GroundingDinoForObjectDetection, GroundingDinoConfig(backbone_config=swin), runtime.device),
                  runtime, box_heads)
    sam = place(_build(SamModel, sam_config, runtime.device), runtime, fourier_features)
    blip_processor = BlipProcessor(BlipImageProcessorPil(size={"height": 384, "width": 384}), bert_tokenizer(workdir, 30524, True))
    gdino_processor = GroundingDinoProcessor(GroundingDinoImageProcessorPil(), bert_tokenizer(workdir, 30522, False))
    return LabelModels(
        build_captioner(blip, blip_processor, runtime, "blip-large-random"),
        build_grounder(gdino, gdino_processor, runtime, "gdino-swint-random"),
        build_segmenter(sam, SamProcessor(SamImageProcessorPil()), runtime, "sam-vit-h-random"),
    )
