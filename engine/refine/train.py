"""Training loops: the saliency cue extractor (PCL-SD) and the detector with SPR (and adapters).

Optimisation follows the USOD code: SGD (momentum 0.9, weight decay 5e-4), learning rate decayed
linearly per iteration to 0.2x, random horizontal flips, a second forward pass at another input scale
for the consistency term. Loops take a loader of :class:`engine.refine.data.RefineDataset` batches
and, for stage 2, the :class:`engine.refine.spr.LabelBank` they read (and SPR rewrites) labels from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from engine.refine.adapters import adapter_train_mode
from engine.refine.cues import cues_to_labels
from engine.refine.losses import (
    DetectorLoss,
    multiscale_consistency_loss,
    pcl_sd_loss,
    pcl_threshold,
    saliency_distilling_loss,
)
from engine.refine.par import PixelAdaptiveRefiner
from engine.refine.params import RefineParams, SCEParams
from engine.refine.spr import LabelBank, SelfRectifier

EpochCallback = Callable[[int, dict], None]
FINAL_LR_FRACTION = 0.2


def _sgd(groups: list[dict]) -> torch.optim.SGD:
    for group in groups:
        group["base_lr"] = group["lr"]
    return torch.optim.SGD(groups, momentum=0.9, weight_decay=5e-4)


def _set_lr(optimizer: torch.optim.Optimizer, progress: float, epoch: int = 0) -> None:
    """Linear decay from the base rate to ``FINAL_LR_FRACTION`` of it; ``progress`` in [0, 1].

    A group with ``hold_epochs`` learns nothing before that epoch.
    """
    factor = (1.0 - progress) * (1.0 - FINAL_LR_FRACTION) + FINAL_LR_FRACTION
    for group in optimizer.param_groups:
        group["lr"] = 0.0 if epoch < group.get("hold_epochs", 0) else group["base_lr"] * factor


def hflip(x: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Flip the samples of ``(B, C, H, W)`` ``x`` where ``flips`` (``(B,)`` bool) is set."""
    return torch.where(flips.view(-1, 1, 1, 1), x.flip(-1), x)


def rescale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` resized by ``scale`` (sides rounded to multiples of 32, at least 32)."""
    size = [max(32, int(round(s * scale / 32)) * 32) for s in x.shape[-2:]]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _distil(probs: torch.Tensor, params: SCEParams, progress_epochs: float) -> torch.Tensor:
    if params.pcl:
        p = pcl_threshold(progress_epochs, params.epochs, params.pcl_start, params.pcl_slope)
        return pcl_sd_loss(probs, p, params.distil_power)
    return saliency_distilling_loss(probs, params.distil_power)


def train_cue_extractor(model: nn.Module, loader: DataLoader, params: SCEParams, device: torch.device,
                        on_epoch: EpochCallback | None = None, generator: torch.Generator | None = None) -> list[dict]:
    """Stage 1: train the SCE with (PCL-)saliency distilling + multi-scale consistency; returns per-epoch stats.

    With ``encoder_lr == 0`` (the code's setting) the backbone is frozen and kept in eval mode.
    """
    model.to(device)
    frozen = params.encoder_lr == 0
    model.backbone.requires_grad_(not frozen)
    groups = [{"params": list(model.decoder.parameters()), "lr": params.lr}]
    if not frozen:
        groups.append({"params": list(model.backbone.parameters()), "lr": params.encoder_lr})
    optimizer, history, steps = _sgd(groups), [], max(1, len(loader))
    for epoch in range(params.epochs):
        model.train()
        if frozen:
            model.backbone.eval()
        started, total = time.perf_counter(), 0.0
        for step, batch in enumerate(loader):
            progress = epoch + step / steps
            _set_lr(optimizer, progress / params.epochs)
            images = batch["image"].to(device)
            images = hflip(images, torch.rand(images.shape[0], generator=generator) < 0.5)
            probs = torch.sigmoid(model(images))
            probs_small = torch.sigmoid(model(rescale(images, params.consistency_scale)))
            loss = _distil(probs, params, progress) + _distil(probs_small, params, progress)
            loss = loss + params.consistency_weight * multiscale_consistency_loss(probs, probs_small)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        stats = {"epoch": epoch, "loss": total / steps, "seconds": time.perf_counter() - started,
                 "p": pcl_threshold(epoch, params.epochs, params.pcl_start, params.pcl_slope) if params.pcl else None}
        history.append(stats)
        if on_epoch is not None:
            on_epoch(epoch, stats)
    return history


@torch.no_grad()
def extract_cues(model: nn.Module, loader: DataLoader, device: torch.device,
                 corner_frac: float = 0.1) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield ``(indices, images, cues)`` per batch; cues ``(B, 1, S, S)`` in [0, 1], foreground salient."""
    model.to(device).eval()
    for batch in loader:
        images = batch["image"].to(device)
        yield batch["index"], images, model.cues(images, corner_frac)


def write_cue_labels(model: nn.Module, loader: DataLoader, bank: LabelBank, refiner: PixelAdaptiveRefiner | None,
                     params: SCEParams, device: torch.device) -> None:
    """Cue maps -> Otsu -> PAR -> median: binary initial labels stored in ``bank``."""
    for indices, images, cues in extract_cues(model, loader, device, params.corner_frac):
        bank.set(indices, cues_to_labels(images, cues, refiner, params.median).cpu())
    bank.flush()


def _detector_optimizer(model: nn.Module, params: RefineParams, trainable: list[nn.Parameter] | None):
    if trainable is not None:
        return _sgd([{"params": trainable, "lr": params.adapter.lr}])
    encoder = model.encoder_parameters()
    encoder_ids = {id(p) for p in encoder}
    decoder = [p for p in model.parameters() if id(p) not in encoder_ids]
    groups = [{"params": decoder, "lr": params.detector.lr},
              {"params": encoder, "lr": params.detector.lr * params.detector.encoder_lr_mult, "hold_epochs": 1}]
    return _sgd(groups)


def train_detector(model: nn.Module, loader: DataLoader, bank: LabelBank, params: RefineParams, device: torch.device,
                   on_epoch: EpochCallback | None = None, trainable: list[nn.Parameter] | None = None,
                   epochs: int | None = None, generator: torch.Generator | None = None) -> list[dict]:
    """Stage 2: IoU (+BCE) + consistency on the bank's labels, with SPR rewriting them per sample.

    ``trainable``: train only these parameters (adapter-tuning; frozen parts stay in eval mode).
    The encoder learns nothing in the first epoch (as in the code), then at ``encoder_lr_mult``.
    """
    model.to(device)
    det = params.detector
    epochs = epochs or (params.adapter.epochs if trainable is not None else det.epochs)
    criterion = DetectorLoss(det.iou_weight, det.bce_weight, det.consistency_weight)
    rectifier = SelfRectifier(PixelAdaptiveRefiner.from_params(params.par), params.spr.weights)
    optimizer = _detector_optimizer(model, params, trainable)
    history, steps = [], max(1, len(loader))
    for epoch in range(epochs):
        if trainable is not None:
            adapter_train_mode(model)
        else:
            model.train()
        started, total, updated = time.perf_counter(), 0.0, 0
        rectify = params.spr.enabled and epoch >= params.spr.start_epoch
        for step, batch in enumerate(loader):
            _set_lr(optimizer, (epoch + step / steps) / epochs, epoch)
            loss, probs = _detector_step(model, batch, bank, criterion, optimizer, params, device, generator)
            total += loss
            if rectify:
                images, indices = batch["image"].to(device), batch["index"]
                bank.set(indices, rectifier(images, probs, bank.get(indices).to(device)).cpu())
                updated += len(indices)
        bank.flush()
        stats = {"epoch": epoch, "loss": total / steps, "spr_updates": updated, "seconds": time.perf_counter() - started}
        history.append(stats)
        if on_epoch is not None:
            on_epoch(epoch, stats)
    return history


def _detector_step(model, batch, bank, criterion, optimizer, params: RefineParams, device, generator):
    """One optimisation step on flipped inputs; returns (loss, un-flipped probs ``(B, 1, S, S)``)."""
    images, second = batch["image"].to(device), batch["second"].to(device)
    labels = bank.get(batch["index"]).to(device)
    flips = (torch.rand(images.shape[0], generator=generator) < 0.5).to(device)
    images_f, second_f = hflip(images, flips), hflip(second, flips)
    target = (hflip(labels, flips) > params.threshold).float()
    logits = model(images_f, second_f)
    scale = params.detector.consistency_scale
    logits_small = model(rescale(images_f, scale), rescale(second_f, scale)) if params.detector.consistency_weight else None
    loss = criterion(logits, target, logits_small)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), hflip(torch.sigmoid(logits.detach()), flips)


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(indices, probs)`` per batch with the detector in eval mode; probs ``(B, 1, S, S)``."""
    model.to(device).eval()
    for batch in loader:
        yield batch["index"], torch.sigmoid(model(batch["image"].to(device), batch["second"].to(device)))
