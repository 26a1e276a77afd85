"""Human texts for captioner fine-tuning: loading, a split by image, and batches with BLIP's bos detail.

BLIP's ``generate()`` starts decoding from the ``[DEC]`` bos token, while its tokenizer starts a
text with ``[CLS]``. Training therefore replaces position 0 of ``input_ids`` with the bos id, so
the model learns exactly the sequences ``generate()`` produces; pads are ``-100`` in the labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.annotations import AnnotationStore, ImageSet, human_texts
from engine.images import file_content_id, read_rgb
from engine.storage import fingerprint


@dataclass(frozen=True)
class CaptionExample:
    """One human text for one image (``group``: the image's id or path; the split never divides a group)."""

    image_path: str
    text: str
    group: str
    annotator: str = ""


def load_texts_jsonl(path: str | Path, images_root: str | Path) -> list[CaptionExample]:
    """Examples from JSON lines ``{"image": path relative to images_root (or absolute), "text": ...}``.

    Lines with a ``_note`` key are comments. Raises ValueError naming the line for bad input.
    """
    path, root = Path(path), Path(images_root)
    examples = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ValueError(f"{path}: cannot read texts file ({err})") from err
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not JSON ({err})") from err
        if "_note" in row:
            continue
        if not isinstance(row.get("image"), str) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise ValueError(f"{path}:{number}: needs string fields 'image' and a non-empty 'text'")
        image = Path(row["image"]) if Path(row["image"]).is_absolute() else root / row["image"]
        if not image.is_file():
            raise ValueError(f"{path}:{number}: image {image} not found")
        # group by content id (as texts from the store do): the split and the checkpoint fingerprint
        # then do not depend on where the project lies, so every clone trains the same captioner
        examples.append(CaptionExample(str(image), row["text"].strip(), file_content_id(image), row.get("annotator", "")))
    if not examples:
        raise ValueError(f"{path}: no texts in file")
    return examples


def texts_from_store(workdir: str | Path, image_set: ImageSet) -> list[CaptionExample]:
    """Each annotator's latest text for each image of ``image_set`` (skips excluded)."""
    texts = human_texts(AnnotationStore(workdir).rows())
    examples = [
        CaptionExample(str(image_set.get(image_id).path), text, image_id, annotator)
        for image_id, pairs in sorted(texts.items())
        if image_id in image_set
        for annotator, text in pairs
    ]
    if not examples:
        raise ValueError(f"{workdir}: no human texts for images under {image_set.root}; annotate first (sodforge annotate)")
    return examples


def split_by_image(examples: list[CaptionExample], val_fraction: float, seed: int = 0) -> tuple[list, list]:
    """Deterministic split by image group (hash order): every text of an image lands on the same side.

    With two or more images, both sides get at least one image.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    groups = sorted({e.group for e in examples}, key=lambda g: fingerprint(seed, g))
    if len(groups) < 2:
        raise ValueError(f"need texts for at least 2 images to split train/validation, got {len(groups)}")
    n_val = min(len(groups) - 1, max(1, round(val_fraction * len(groups))))
    val_groups = set(groups[:n_val])
    return [e for e in examples if e.group not in val_groups], [e for e in examples if e.group in val_groups]


class CaptionDataset(torch.utils.data.Dataset):
    """``(rgb (H, W, 3) uint8, text)`` pairs, decoded on access."""

    def __init__(self, examples: list[CaptionExample]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[Any, str]:
        example = self.examples[index]
        return read_rgb(example.image_path), example.text


@dataclass
class CaptionCollator:
    """Turns ``[(rgb, text), ...]`` into BLIP inputs: ``pixel_values (B, 3, S, S)``, ``input_ids``/
    ``attention_mask``/``labels`` ``(B, T)`` with the bos id at position 0 and ``-100`` on pads."""

    processor: Any
    bos_token_id: int
    max_tokens: int = 32

    def __call__(self, batch: list[tuple[Any, str]]) -> dict[str, torch.Tensor]:
        images, texts = zip(*batch, strict=True)
        encoded = self.processor(images=list(images), text=list(texts), return_tensors="pt", padding="longest",
                                 truncation=True, max_length=self.max_tokens)
        input_ids = encoded["input_ids"].clone()
        input_ids[:, 0] = self.bos_token_id
        labels = input_ids.masked_fill(encoded["attention_mask"] == 0, -100)
        return {"pixel_values": encoded["pixel_values"], "input_ids": input_ids,
                "attention_mask": encoded["attention_mask"], "labels": labels}
