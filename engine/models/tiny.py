"""Tiny, randomly initialised BLIP / GroundingDINO / SAM built from real configs.

They exist for tests and the offline demo: they are saved with ``save_pretrained`` and loaded back
through exactly the ``from_pretrained`` path used for real checkpoints. Their outputs are
meaningless. Built deterministically from a seed; tokenizers and processors are made offline.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

TINY_FAMILIES = ("blip", "grounding_dino", "sam")
TINY_VERSION = "v2"

# Words a tiny captioner can emit; the rest of the vocabulary is [unusedN] filler.
_WORDS = (
    "a an the of on in with and near photo picture image close up view there is are "
    "red green blue yellow white black orange purple pink gray brown small large big round "
    "dog cat bird car bus boat plane horse cow sheep bear elephant zebra giraffe person man "
    "woman child flower tree house chair table cup bottle ball apple banana orange pizza cake "
    "circle square triangle star disk shape object toy lamp vase clock book phone bicycle "
    "sitting standing lying flying grass field water sky road wall floor background"
).split()

# GroundingDINO hard-codes bert-base-uncased ids for these tokens.
_FIXED_IDS = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 1012: ".", 1029: "?"}
_VOCAB_SIZE = 1100


def _pseudo_words() -> list[str]:
    """Pronounceable filler words (``bako``, ``rimu``...) so random captions still parse as words."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    return [a + b for a in syllables for b in syllables]


def tiny_vocab() -> list[str]:
    """BERT-style vocabulary with the special tokens at bert-base-uncased ids and ``[DEC]`` last."""
    words = iter(dict.fromkeys([*_WORDS, *_pseudo_words()]))
    vocab = []
    for index in range(_VOCAB_SIZE - 1):
        vocab.append(_FIXED_IDS[index] if index in _FIXED_IDS else next(words))
    vocab.append("[DEC]")
    return vocab


def _tokenizer(workdir: Path):
    from transformers import BertTokenizer

    vocab_file = workdir / "vocab.txt"
    vocab_file.write_text("\n".join(tiny_vocab()) + "\n")
    tokenizer = BertTokenizer(str(vocab_file), do_lower_case=True)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    return tokenizer


# ``real_sizes``: the same tiny networks fed at the real processors' input sizes (BLIP 384,
# GroundingDINO 800x1333, SAM 1024), so a benchmark's pixels/masks cost what they cost for real models.
def _build_blip(tokenizer, out_dir: Path, real_sizes: bool = False) -> None:
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessorPil, BlipProcessor

    vocab_size = len(tiny_vocab())
    config = BlipConfig(
        text_config=dict(
            vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=64, bos_token_id=vocab_size - 1,
            pad_token_id=0, sep_token_id=102, eos_token_id=102, initializer_range=0.02,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=384 if real_sizes else 64, patch_size=16, initializer_range=0.02,
        ),
        projection_dim=32,
    )
    model = BlipForConditionalGeneration(config)
    side = 384 if real_sizes else 64
    processor = BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": side, "width": side}), tokenizer=tokenizer)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)


def _build_grounding_dino(tokenizer, out_dir: Path, real_sizes: bool = False) -> None:
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
        SwinConfig,
    )

    backbone = SwinConfig(
        image_size=128, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1],
        window_size=4, out_indices=[2, 3, 4],
    )
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=dict(
            model_type="bert", vocab_size=len(tiny_vocab()), hidden_size=32, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
        ),
        num_queries=20, encoder_layers=1, decoder_layers=2, d_model=32, encoder_ffn_dim=64,
        decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2, max_text_len=32,
        encoder_n_points=2, decoder_n_points=2,
    )
    model = GroundingDinoForObjectDetection(config)
    size = {"shortest_edge": 800, "longest_edge": 1333} if real_sizes else {"shortest_edge": 128, "longest_edge": 192}
    image_processor = GroundingDinoImageProcessorPil(size=size)
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)


def _build_sam(out_dir: Path, real_sizes: bool = False) -> None:
    from transformers import SamConfig, SamImageProcessorPil, SamModel, SamProcessor

    side = 1024 if real_sizes else 128
    config = SamConfig(
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=side, patch_size=16, output_channels=16, window_size=4, global_attn_indexes=[1],
            mlp_dim=64, num_pos_feats=8, initializer_range=0.02,
        ),
        prompt_encoder_config=dict(hidden_size=16, image_size=side, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(
            hidden_size=16, mlp_dim=32, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=16
        ),
        # A wide init: at 0.02 this tiny SAM's mask logits are ~1e-6, so every stability score (and
        # quality score) would be 0; at 0.5 they are ~1 and the quality signals vary across images.
        initializer_range=0.5,
    )
    model = SamModel(config)
    image_processor = SamImageProcessorPil(
        size={"longest_edge": side}, pad_size={"height": side, "width": side},
        mask_size={"longest_edge": side // 4}, mask_pad_size={"height": side // 4, "width": side // 4},
    )
    model.save_pretrained(out_dir)
    SamProcessor(image_processor=image_processor).save_pretrained(out_dir)


def build_tiny_models(
    out_dir: str | Path, seed: int = 0, families: tuple[str, ...] = TINY_FAMILIES, real_sizes: bool = False
) -> dict[str, Path]:
    """Build and save the tiny models into ``out_dir/<family>``; returns their directories.

    ``real_sizes``: processors (and position embeddings) at the real models' input sizes, for
    benchmarks of everything around the models.

    Each family directory is written under a temporary name and renamed into place, so a
    concurrent reader never sees a half-saved model.
    """
    unknown = sorted(set(families) - set(TINY_FAMILIES))
    if unknown:
        raise ValueError(f"unknown tiny model families {unknown}; known: {list(TINY_FAMILIES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for offset, family in enumerate(families):
        target = out_dir / family
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{family}.") as tmp:
            staging = Path(tmp) / family
            staging.mkdir()
            torch.manual_seed(seed + offset)
            if family == "sam":
                _build_sam(staging, real_sizes)
            else:
                tokenizer = _tokenizer(Path(tmp))
                (_build_blip if family == "blip" else _build_grounding_dino)(tokenizer, staging, real_sizes)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        paths[family] = target
    return paths


def tiny_cache_dir() -> Path:
    """Where the ``tiny`` source is built: ``$SODFORGE_CACHE/tiny-<version>`` (default ~/.cache/sodforge)."""
    root = Path(os.environ.get("SODFORGE_CACHE", Path.home() / ".cache" / "sodforge"))
    return root / f"tiny-{TINY_VERSION}"


def ensure_tiny_model(family: str) -> Path:
    """Directory of the tiny ``family`` model, building it on first use."""
    directory = tiny_cache_dir() / family
    if not (directory / "config.json").is_file():
        build_tiny_models(tiny_cache_dir(), families=(family,), seed=TINY_FAMILIES.index(family))
    return directory
