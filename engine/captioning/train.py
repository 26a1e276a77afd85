"""Fine-tune BLIP (``BlipForConditionalGeneration``) on human texts; resumable, mixed precision on GPU.

Devices and precision go through Lightning Fabric (bf16/fp16 mixed on GPU, fp32 on CPU). After
every epoch the model and processor are saved with ``save_pretrained`` into ``out_dir`` (written
beside it and swapped in), with ``finetune.json`` (progress, metrics) and ``.trainer_state.pt``
(optimizer state): a killed run resumes from the last finished epoch. The same texts, base model
and parameters reuse a finished checkpoint instead of training again. Validation (before and
after) runs through the labelling adapter, so the measured captions are what labelling will see.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.captioning.checkpoint import INFO_FILE
from engine.captioning.data import CaptionCollator, CaptionDataset, CaptionExample, split_by_image
from engine.captioning.evaluate import evaluate_captioner
from engine.models.adapters.blip import load_blip
from engine.models.registry import resolve_source
from engine.models.runtime import resolve_runtime
from engine.params import ModelSpec
from engine.storage import fingerprint

log = logging.getLogger(__name__)
STATE_FILE = ".trainer_state.pt"
_FABRIC_PRECISION = {"fp32": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}


@dataclass(frozen=True)
class FinetuneParams:
    """Fine-tuning settings (``params.yaml`` section ``finetune``)."""

    base: str | None = None  # BLIP to start from; None: the models profile's captioner
    epochs: int = 10
    batch_size: int = 8
    lr: float = 5e-5
    weight_decay: float = 0.01
    val_fraction: float = 0.2
    seed: int = 0
    max_tokens: int = 32
    freeze_vision: bool = False
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (mixed precision on GPU)
    eval_batch_size: int = 16
    max_new_tokens: int = 20
    num_workers: int = 0

    RUNTIME_KEYS = ("device", "precision", "eval_batch_size", "num_workers")

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (0.0 < self.val_fraction < 1.0, "val_fraction must be in (0, 1)"),
            (self.max_tokens >= 4, "max_tokens must be >= 4"),
            (self.precision in ("auto", *_FABRIC_PRECISION), "precision must be auto, fp32, bf16 or fp16"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"finetune params: {message}")

    def result_params(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.RUNTIME_KEYS}


@dataclass
class FinetuneResult:
    out_dir: Path
    train_losses: list[float]
    val_losses: list[float]
    before: dict[str, Any]
    after: dict[str, Any]
    train_images: int
    val_images: int
    reused: bool = False
    resumed_from_epoch: int = 0

    def metrics(self) -> dict[str, Any]:
        """The DVC metric: phrase/caption scores before and after, losses, sizes."""
        strip = lambda m: {k: v for k, v in m.items() if k != "samples"}  # noqa: E731
        return {
            "before": strip(self.before), "after": strip(self.after),
            "train_loss_first": self.train_losses[0] if self.train_losses else None,
            "train_loss_last": self.train_losses[-1] if self.train_losses else None,
            "val_loss_last": self.val_losses[-1] if self.val_losses else None,
            "epochs": len(self.train_losses), "train_images": self.train_images, "val_images": self.val_images,
        }


def _fabric(params: FinetuneParams):
    from lightning_fabric import Fabric

    runtime = resolve_runtime(params.device, params.precision)
    precision = {None: "32-true", torch.bfloat16: "bf16-mixed", torch.float16: "16-mixed"}[runtime.autocast_dtype]
    device = runtime.device
    devices = [device.index] if device.type == "cuda" and device.index is not None else 1
    return Fabric(accelerator=device.type, devices=devices, precision=precision), runtime


def _load_info(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / INFO_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _save(out_dir: Path, model: Any, processor: Any, info: dict, trainer_state: dict | None) -> None:
    """Write model + processor + info into a sibling folder, then swap it in for ``out_dir``."""
    staging = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    processor.save_pretrained(staging)
    if trainer_state is not None:
        torch.save(trainer_state, staging / STATE_FILE)
    (staging / INFO_FILE).write_text(json.dumps(info, indent=1, default=str))
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _recover(out_dir: Path) -> None:
    """A crash between the two renames of ``_save`` leaves only ``.name.old-*``: put it back."""
    if not out_dir.exists():
        olds = sorted(out_dir.parent.glob(f".{out_dir.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds:
            os.replace(olds[-1], out_dir)


def _epoch(fabric, model, optimizer, examples, collator, params, epoch, train: bool) -> float:
    generator = torch.Generator().manual_seed(params.seed * 1000 + epoch)
    loader = torch.utils.data.DataLoader(CaptionDataset(examples), batch_size=params.batch_size, shuffle=train,
                                         generator=generator, collate_fn=collator, num_workers=params.num_workers)
    model.train(train)
    total, count = 0.0, 0
    for batch in loader:
        batch = fabric.to_device(batch)
        with torch.set_grad_enabled(train):
            loss = model(**batch).loss
        if train:
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
        total += float(loss.detach()) * len(batch["input_ids"])
        count += len(batch["input_ids"])
    return total / max(count, 1)


def _evaluate(directory_spec: ModelSpec, runtime, examples, params) -> dict[str, Any]:
    captioner = load_blip(resolve_source(directory_spec), runtime)
    return evaluate_captioner(captioner, examples, params.eval_batch_size, params.max_new_tokens)


def finetune_captioner(examples: list[CaptionExample], out_dir: str | Path, params: FinetuneParams, base: str,
                       on_epoch: Callable[[int, float, float], None] | None = None) -> FinetuneResult:
    """Fine-tune the BLIP ``base`` (HF id, local dir or ``tiny``) on ``examples`` into ``out_dir``."""
    from transformers import AutoProcessor, BlipForConditionalGeneration

    out_dir = Path(out_dir)
    _recover(out_dir)
    train, val = split_by_image(examples, params.val_fraction, params.seed)
    base_spec = ModelSpec("blip", base)
    key = fingerprint(resolve_source(base_spec).identity, params.result_params(),
                      sorted((e.group, e.text) for e in examples))
    info = _load_info(out_dir)
    sizes = {"train_images": len({e.group for e in train}), "val_images": len({e.group for e in val})}
    if info.get("fingerprint") == key and info.get("complete"):
        return FinetuneResult(out_dir, info["train_losses"], info["val_losses"], info["before"], info["after"],
                              **sizes, reused=True)
    resume = info.get("fingerprint") == key and (out_dir / STATE_FILE).is_file()
    fabric, runtime = _fabric(params)
    torch.manual_seed(params.seed)
    before = info["before"] if resume else _evaluate(base_spec, runtime, val, params)
    start_dir = out_dir if resume else resolve_source(base_spec).directory
    model = BlipForConditionalGeneration.from_pretrained(str(start_dir))
    processor = AutoProcessor.from_pretrained(str(start_dir))
    if params.freeze_vision:
        model.vision_model.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=params.lr,
                                  weight_decay=params.weight_decay)
    state = torch.load(out_dir / STATE_FILE, weights_only=False) if resume else None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    model, optimizer = fabric.setup(model, optimizer)
    collator = CaptionCollator(processor, model.config.text_config.bos_token_id, params.max_tokens)
    train_losses, val_losses = (list(info["train_losses"]), list(info["val_losses"])) if resume else ([], [])
    first_epoch = len(train_losses)
    for epoch in range(first_epoch, params.epochs):
        train_loss = _epoch(fabric, model, optimizer, train, collator, params, epoch, train=True)
        val_loss = _epoch(fabric, model, optimizer, val, collator, params, epoch, train=False)
        if not math.isfinite(train_loss):
            raise RuntimeError(f"fine-tuning diverged at epoch {epoch + 1} (loss {train_loss}); lower finetune.lr")
        train_losses.append(round(train_loss, 5))
        val_losses.append(round(val_loss, 5))
        progress = {"fingerprint": key, "base": base, "complete": False, "train_losses": train_losses,
                    "val_losses": val_losses, "before": before, "params": params.result_params(), **sizes}
        _save(out_dir, model.module, processor, progress, {"optimizer": optimizer.state_dict(), "epoch": epoch + 1})
        if on_epoch is not None:
            on_epoch(epoch + 1, train_loss, val_loss)
    del model, optimizer
    after = _evaluate(ModelSpec("blip", str(out_dir)), runtime, val, params)
    final = {**_load_info(out_dir), "complete": True, "after": after}
    (out_dir / INFO_FILE).write_text(json.dumps(final, indent=1, default=str))
    (out_dir / STATE_FILE).unlink(missing_ok=True)
    return FinetuneResult(out_dir, train_losses, val_losses, before, after, **sizes, resumed_from_epoch=first_epoch)
