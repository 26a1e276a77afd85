"""Captioner fine-tuning: BLIP trained on the human texts, validated against them.

Modules: ``data`` (texts, split by image, batches), ``train`` (``finetune_captioner``),
``evaluate`` (phrase match + caption metric), ``checkpoint`` (which captioner labelling uses).
Only the light ``checkpoint`` helper is imported here (``engine.params`` uses it).
"""

from engine.captioning.checkpoint import finetuned_source

__all__ = ["finetuned_source"]
