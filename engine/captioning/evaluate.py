"""Validation of a captioner against human texts: phrase match and a caption metric.

For each validation image the captioner's output (through the labelling path's ``caption``) is
compared with every human text of that image and the best match counts
(``engine.annotations.agreement``): ``exact`` phrase match, ``category`` (head noun) match,
``token_f1`` of the phrases (partial match) and ``caption_f1`` (token F1 of the full texts; our
caption metric, used instead of BLEU, which is unstable on 2-4 word texts).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from engine.annotations.agreement import best_match, mean_scores
from engine.captioning.data import CaptionExample
from engine.images import read_rgb


def evaluate_captioner(captioner: Any, examples: list[CaptionExample], batch_size: int = 8,
                       max_new_tokens: int = 20, prompt: str = "", samples: int = 5) -> dict[str, Any]:
    """Mean scores over the images of ``examples`` plus a few ``samples`` (generated vs human).

    ``captioner``: an object with ``caption(images, prompt, max_new_tokens, num_beams)`` (the
    labelling adapter ``BlipCaptioner``).
    """
    references: dict[str, list[str]] = defaultdict(list)
    paths: dict[str, str] = {}
    for example in examples:
        references[example.group].append(example.text)
        paths[example.group] = example.image_path
    groups = sorted(references)
    generated: list[str] = []
    for start in range(0, len(groups), batch_size):
        chunk = groups[start : start + batch_size]
        generated.extend(captioner.caption([read_rgb(paths[g]) for g in chunk], prompt, max_new_tokens, 1))
    scores = [best_match(text, references[g]) for g, text in zip(groups, generated, strict=True)]
    shown = [{"generated": text, "human": references[g]} for g, text in list(zip(groups, generated, strict=True))[:samples]]
    return {**mean_scores(scores), "samples": shown}
