"""Adapter-tuning a trained detector on a target set (another modality or domain), without labels.

The detector is frozen; an adapter (``F' = T(F) + T_a(F)``) is attached to its deepest decoder
branch. Target pseudo-labels start as the frozen model's own predictions turned into binary labels
(Otsu + PAR); the adapter trains on them with SPR, as stage 2 does. When the target set has true
masks (``masks/<stem>.png``), MAE before and after is reported (evaluation only, never training).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.images.manifest import MODALITIES, images_root, scan_image_files
from engine.refine.adapters import attach_adapter
from engine.refine.cues import cues_to_labels
from engine.refine.data import RefineItem, make_loader, upsample_label
from engine.refine.models import build_detector
from engine.refine.par import PixelAdaptiveRefiner
from engine.refine.params import RefineParams
from engine.refine.spr import LabelBank
from engine.refine.stages import configure_torch, save_checkpoint, seed_everything
from engine.refine.train import predict, train_detector


def target_items(target: str | Path, second_stream: str = "auto") -> list[RefineItem]:
    """Images of a set folder with their second modality (same stem under depth/, thermal/, flow/)."""
    target = Path(target)
    names = () if second_stream == "rgb" else (MODALITIES if second_stream == "auto" else (second_stream,))
    items = []
    for index, path in enumerate(scan_image_files(images_root(target))):
        second = next((m for n in names for m in sorted((target / n).glob(f"{path.stem}.*"))), None)
        items.append(RefineItem(index, path.stem, str(path), str(second) if second else None))
    if not items:
        raise ValueError(f"{target}: no images to adapt to")
    return items


def load_detector(path: str | Path) -> torch.nn.Module:
    """A detector checkpoint (with its adapter when it was adapter-tuned), in eval mode."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("kind") != "detector":
        raise ValueError(f"{path}: not a refine detector checkpoint")
    model = build_detector(state["backbone"])
    if state.get("adapter_hidden"):
        attach_adapter(model, int(state["adapter_hidden"]))
    model.load_state_dict(state["state_dict"])
    return model.eval()


def _mae_against_masks(model, loader, items: list[RefineItem], target: Path, device) -> float | None:
    masks_dir = target / "masks"
    if not masks_dir.is_dir():
        return None
    errors = []
    for indices, probs in predict(model, loader, device):
        for i, prob in zip(indices.tolist(), probs, strict=True):
            mask_path = masks_dir / f"{items[i].image_id}.png"
            if mask_path.is_file():
                truth = np.asarray(Image.open(mask_path).convert("L")) > 127
                errors.append(np.abs(upsample_label(prob[0].cpu().numpy(), truth.shape) - truth).mean())
    return round(float(np.mean(errors)), 4) if errors else None


def adapter_tune(detector: str | Path, target: str | Path, out_dir: str | Path, params: RefineParams, log=print) -> dict:
    """Adapter-tune ``detector`` on ``target``; writes ``adapted.pt`` and ``transfer.json`` in ``out_dir``."""
    target, out_dir = Path(target), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device, generator = configure_torch(params), seed_everything(params.seed)
    items = target_items(target, params.detector.second_stream)
    model = load_detector(detector).to(device)
    ordered = make_loader(items, params.size, params.batch_size, params.num_workers)
    mae_before = _mae_against_masks(model, ordered, items, target, device)
    bank = LabelBank(out_dir / "labels.u8", len(items), params.size)
    refiner = PixelAdaptiveRefiner.from_params(params.par).to(device)
    for indices, probs in predict(model, ordered, device):
        images = torch.stack([ordered.dataset[i]["image"] for i in indices.tolist()]).to(device)
        bank.set(indices, cues_to_labels(images, probs, refiner).cpu())
    trainable = attach_adapter(model, params.adapter.hidden)
    loader = make_loader(items, params.size, params.batch_size, params.num_workers, shuffle=True, seed=params.seed)
    history = train_detector(model, loader, bank, params, device, trainable=trainable, generator=generator,
                             on_epoch=lambda e, s: log(f"adapter epoch {e}: loss {s['loss']:.4f}"))
    path = save_checkpoint(model, out_dir / "adapted.pt", "detector", params.backbone, adapter_hidden=params.adapter.hidden)
    summary = {"detector": str(detector), "target": str(target), "images": len(items), "adapted": str(path),
               "adapter_params": sum(p.numel() for p in trainable), "mae_before": mae_before,
               "mae_after": _mae_against_masks(model, ordered, items, target, device), "history": history}
    (out_dir / "transfer.json").write_text(json.dumps(summary, indent=1))
    return summary
