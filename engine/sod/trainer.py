"""Train an SODNet on label shards with Lightning Fabric: devices, precision, checkpoints, resume.

Output folder layout (every file replaced atomically)::

    out/checkpoints/last.ckpt   model + optimizer + scheduler + epoch + history (written every epoch)
    out/checkpoints/last.json   {"epoch", "fingerprint"}: what the checkpoint holds
    out/history.json            one record per finished epoch (DVC plots)
    out/metrics.json            the last epoch's record + totals (DVC metrics)
    out/model.pt                final weights + ModelConfig (what ``predict`` loads)
    out/params.json             the resolved parameters

Running the same command again resumes after the last finished epoch when the fingerprint
(parameters that change the result + the training data's content) matches; otherwise it starts over.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from engine.sod.cache import PairCache
from engine.sod.data import (
    CachedPairDataset,
    LabelShardDataset,
    find_label_shards,
    read_label_rows,
    rows_fingerprint,
    select_split,
)
from engine.sod.losses import SODLoss
from engine.sod.model import SODNet, save_model
from engine.sod.params import TrainParams
from engine.storage import fingerprint


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    model_path: Path
    epochs_run: int
    resumed_from: int
    history: list[dict]
    seconds: float


def write_json(path: Path, data: object) -> None:
    """Write JSON atomically (temp name, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): there bf16 autocast trains ~1.4-1.6x faster."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` -> ``bf16-mixed`` when training on CUDA, else ``32-true``; ``bf16-if-native`` -> ``bf16-mixed``
    on CUDA and on CPUs with native bf16 (:func:`cpu_has_native_bf16`), else ``32-true``; others pass on."""
    if precision not in ("auto", "bf16-if-native"):
        return precision
    on_gpu = accelerator in ("auto", "cuda", "gpu") and torch.cuda.is_available()
    if on_gpu:
        return "bf16-mixed"
    return "bf16-mixed" if precision == "bf16-if-native" and cpu_has_native_bf16() else "32-true"


def make_optimizer(model: torch.nn.Module, params: TrainParams) -> torch.optim.Optimizer:
    """SGD (Nesterov) or AdamW; the backbone's LR is ``lr * backbone_lr_mult`` (e.g. 0.1 for pretrained weights)."""
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    groups = [{"params": backbone, "lr": params.lr * params.backbone_lr_mult}, {"params": rest, "lr": params.lr}]
    groups = [g for g in groups if g["params"]]
    if params.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=params.lr, momentum=params.momentum, weight_decay=params.weight_decay,
                               nesterov=True)
    return torch.optim.AdamW(groups, lr=params.lr, weight_decay=params.weight_decay)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """LR multiplier at ``step``: linear warm-up over ``warmup`` steps, then cosine to ~0 or constant."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(step - warmup, total - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, params: TrainParams, steps_per_epoch: int):
    """Per-step LR schedule (:func:`lr_factor`): ``warmup_epochs`` of linear warm-up, then cosine or constant."""
    total = max(1, params.epochs * steps_per_epoch)
    warmup = min(total, int(round(params.warmup_epochs * steps_per_epoch)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, warmup, params.schedule))


def _datasets(params: TrainParams, train_rows: list[dict], val_rows: list[dict], log: Callable[[str], None]):
    """Training and validation datasets: decoded once into memory (``cache``) or read per item."""
    if not params.cache:
        return (LabelShardDataset(train_rows, params.size_hw, params.hflip),
                LabelShardDataset(val_rows, params.size_hw) if val_rows else None)
    cache_hw = tuple(int(round(s * params.cache_scale)) for s in params.size_hw)
    workers = max(1, torch.get_num_threads())
    started = time.perf_counter()
    train_cache = PairCache(train_rows, cache_hw, workers, params.cache_mb, log=log)
    val_cache = PairCache(val_rows, params.size_hw, workers, params.cache_mb, log=log) if val_rows else None
    size_mb = (train_cache.nbytes + (val_cache.nbytes if val_cache else 0)) / 2**20
    log(f"decoded {len(train_cache)} training and {len(val_cache) if val_cache else 0} validation pairs once "
        f"({size_mb:.0f} MB{', memory-mapped' if train_cache.on_disk else ''}) in {time.perf_counter() - started:.1f} s")
    if not len(train_cache):
        raise ValueError(f"{params.labels}: none of the {len(train_rows)} training images could be read")
    return (CachedPairDataset(train_cache, params.size_hw, params.augment_params()),
            CachedPairDataset(val_cache, params.size_hw) if val_cache and len(val_cache) else None)


def _loaders(params: TrainParams, rows: list[dict], log: Callable[[str], None]) -> tuple[DataLoader, DataLoader | None]:
    train_rows = select_split(rows, "train", params.val_fraction, params.seed)
    val_rows = select_split(rows, "val", params.val_fraction, params.seed)
    if not train_rows:
        raise ValueError(f"{params.labels}: no training images (of {len(rows)} ok labels) after the split")
    train_set, val_set = _datasets(params, train_rows, val_rows, log)
    generator = torch.Generator().manual_seed(params.seed)
    train = DataLoader(train_set, batch_size=params.batch_size, shuffle=True,
                       drop_last=len(train_set) > params.batch_size, num_workers=params.num_workers,
                       generator=generator, persistent_workers=params.num_workers > 0)
    val = DataLoader(val_set, batch_size=params.batch_size, num_workers=params.num_workers) if val_set else None
    return train, val


def _run_epoch(fabric, model, optimizer, scheduler, loss_fn, loader, bar) -> dict:
    model.train()
    sums: dict[str, float] = {}
    seen, started = 0, time.perf_counter()
    for batch in loader:
        out = model(batch["image"])
        total, parts = loss_fn(out.logits, batch["mask"], out.edge_logits, out.side_logits)
        optimizer.zero_grad(set_to_none=True)
        fabric.backward(total)
        optimizer.step()
        scheduler.step()
        count = batch["image"].shape[0]
        seen += count
        for name, value in {"loss": float(total.detach()), **parts}.items():
            sums[name] = sums.get(name, 0.0) + value * count
        if bar is not None:
            bar.update(count)
            bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
    seconds = time.perf_counter() - started
    record = {f"train_{k}": v / max(seen, 1) for k, v in sums.items()}
    return {**record, "train_images": seen, "train_seconds": seconds, "train_images_per_s": seen / max(seconds, 1e-9)}


@torch.no_grad()
def evaluate_loader(model, loader, loss_fn) -> dict:
    """``val_loss`` and ``val_mae`` (pysodmetrics MAE of 0-255 maps vs masks > 0.5, at training size)."""
    from py_sod_metrics import MAE

    model.eval()
    mae, losses, seen = MAE(), 0.0, 0
    for batch in loader:
        out = model(batch["image"])
        total, _ = loss_fn(out.logits, batch["mask"], out.edge_logits)
        probs = torch.sigmoid(out.logits.float()).squeeze(1).cpu().numpy()
        masks = (batch["mask"].squeeze(1).cpu().numpy() > 0.5)
        for prob, mask in zip(probs, masks, strict=True):
            mae.step(pred=np.round(prob * 255).astype(np.uint8), gt=mask.astype(np.uint8) * 255)
        losses += float(total) * probs.shape[0]
        seen += probs.shape[0]
    return {"val_loss": losses / max(seen, 1), "val_mae": float(mae.get_results()["mae"]), "val_images": seen}


def _resume_epoch(fabric, ckpt: Path, run_fp: str, state: dict, log: Callable[[str], None]) -> int:
    """Load ``ckpt`` into ``state`` when its sidecar carries ``run_fp``; returns the epochs already done."""
    sidecar = ckpt.with_suffix(".json")
    if not (ckpt.is_file() and sidecar.is_file()):
        return 0
    info = json.loads(sidecar.read_text())
    if info.get("fingerprint") != run_fp:
        log(f"{ckpt}: checkpoint is from other parameters or data; starting over")
        return 0
    fabric.load(ckpt, state)
    log(f"resuming from {ckpt} after epoch {state['epoch']}")
    return int(state["epoch"])


def train_sod(out_dir: str | Path, params: TrainParams, progress: bool = True,
              log: Callable[[str], None] = print) -> TrainResult:
    """Train (or resume) an SODNet on ``params.labels`` into ``out_dir`` (layout in the module docstring)."""
    from lightning_fabric import Fabric

    started = time.perf_counter()
    out = Path(out_dir)
    rows = read_label_rows(find_label_shards(params.labels, params.run_id), params.min_quality)
    run_fp = fingerprint(params.result_params(), rows_fingerprint(rows))
    fabric = Fabric(accelerator=params.accelerator, devices=params.devices,
                    precision=resolve_precision(params.precision, params.accelerator))
    fabric.launch()  # no-op on one device; starts the other processes for multi-device strategies
    fabric.seed_everything(params.seed, verbose=False)
    train_loader, val_loader = _loaders(params, rows, log)
    model = SODNet(params.model_config())
    if params.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, params)
    scheduler = make_scheduler(optimizer, params, len(train_loader))
    model, optimizer = fabric.setup(model, optimizer)
    train_loader = fabric.setup_dataloaders(train_loader)
    val_loader = fabric.setup_dataloaders(val_loader) if val_loader is not None else None
    loss_fn = SODLoss(params.loss_weights())
    state = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "epoch": 0, "history": []}
    ckpt = out / "checkpoints" / "last.ckpt"
    resumed = _resume_epoch(fabric, ckpt, run_fp, state, log)
    write_json(out / "params.json", {"train": asdict(params), "fingerprint": run_fp})
    for epoch in range(resumed + 1, params.epochs + 1):
        record = _train_one(fabric, state, loss_fn, train_loader, val_loader, epoch, params, progress)
        state["epoch"], state["history"] = epoch, [*state["history"], record]
        fabric.save(ckpt, state)
        if fabric.is_global_zero:
            write_json(ckpt.with_suffix(".json"), {"epoch": epoch, "fingerprint": run_fp})
            write_json(out / "history.json", state["history"])
        log(_describe(record, params.epochs))
    return _finish(fabric, state, out, params, resumed, started)


def _train_one(fabric, state, loss_fn, train_loader, val_loader, epoch, params, progress) -> dict:
    from tqdm.auto import tqdm

    bar = tqdm(total=len(train_loader.dataset), desc=f"epoch {epoch}/{params.epochs}", unit="img", leave=False,
               disable=not (progress and fabric.is_global_zero))
    with bar:
        record = _run_epoch(fabric, state["model"], state["optimizer"], state["scheduler"], loss_fn, train_loader, bar)
    if val_loader is not None:
        record.update(evaluate_loader(state["model"], val_loader, loss_fn))
    return {"epoch": epoch, "lr": state["optimizer"].param_groups[-1]["lr"], **record}


def _describe(record: dict, epochs: int) -> str:
    val = f", val MAE {record['val_mae']:.4f}" if "val_mae" in record else ""
    return (f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f}{val}, "
            f"{record['train_images_per_s']:.1f} img/s")


def _finish(fabric, state, out: Path, params: TrainParams, resumed: int, started: float) -> TrainResult:
    history = state["history"]
    seconds = time.perf_counter() - started
    model_path = out / "model.pt"
    if fabric.is_global_zero:
        save_model(state["model"].module if hasattr(state["model"], "module") else state["model"], model_path)
        last = dict(history[-1]) if history else {}
        last.update({"epochs": params.epochs, "train_seconds_total": sum(r["train_seconds"] for r in history)})
        write_json(out / "metrics.json", last)
    return TrainResult(out, model_path, params.epochs - resumed, resumed, history, seconds)
