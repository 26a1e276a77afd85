"""The stages of a planned refinement run, each taking the run directory and writing files in it.

1. :func:`run_cue_stage`: train the SCE with PCL-SD, write ``sce.pt`` and the cue labels ``cues.u8``.
2. :func:`run_detector_stage`: initial labels (source masks, or cues where there is none / when
   ``init: cues``) into ``labels-init.u8``; copy to ``labels.u8``; train the detector with SPR
   rewriting ``labels.u8``; write ``detector.pt``.
3. :func:`write_refined_shard`: one source label shard -> one refined shard (atomic, fingerprinted).

A stage whose ``<stage>.done`` marker exists is skipped (resume); the run id already pins inputs and
parameters.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from engine.refine.data import make_loader, resize_mask, resolve_device, upsample_label
from engine.refine.models import build_cue_extractor, build_detector
from engine.refine.par import PixelAdaptiveRefiner
from engine.refine.plan import RefinePlan, load_items, load_plan, refine_items
from engine.refine.records import refined_row, refined_table, source_mask
from engine.refine.spr import LabelBank
from engine.refine.train import train_cue_extractor, train_detector, write_cue_labels
from engine.storage import fingerprint, read_fingerprint, read_table, shard_is_current, write_table_atomic


def configure_torch(params) -> torch.device:
    """Apply ``params.threads`` (when set) and return the resolved device."""
    if params.threads:
        torch.set_num_threads(int(params.threads))
    return resolve_device(params.device)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def save_checkpoint(model: torch.nn.Module, path: Path, kind: str, backbone: str, **extra) -> Path:
    """``{"kind", "backbone", "state_dict", **extra}`` written atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"kind": kind, "backbone": backbone, "state_dict": model.state_dict(), **extra}, tmp)
    tmp.replace(path)
    return path


def _done(plan: RefinePlan, stage: str) -> bool:
    marker = plan.path(f"{stage}.done")
    return marker.is_file() and marker.read_text().strip() == plan.run_id


def _history(plan: RefinePlan, stage: str, history: list[dict]) -> None:
    path = plan.path("history.json")
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[stage] = history
    path.write_text(json.dumps(data, indent=1))
    plan.path(f"{stage}.done").write_text(plan.run_id)


def run_cue_stage(run_dir: str | Path, log=print) -> Path:
    """Stage 1; returns the cue bank path."""
    plan = load_plan(run_dir)
    bank_path = plan.path("cues.u8")
    if _done(plan, "sce"):
        return bank_path
    params, device = plan.params, configure_torch(plan.params)
    generator = seed_everything(params.seed)
    items = refine_items(plan)
    model = build_cue_extractor(params.backbone, params.checkpoint)
    loader = make_loader(items, params.size, params.batch_size, params.num_workers, shuffle=True, seed=params.seed)
    history = train_cue_extractor(model, loader, params.sce, device, generator=generator,
                                  on_epoch=lambda e, s: log(f"sce epoch {e}: loss {s['loss']:.4f} p {s['p']}"))
    save_checkpoint(model, plan.path("sce.pt"), "sce", params.backbone)
    bank = LabelBank(bank_path, plan.count, params.size)
    refiner = PixelAdaptiveRefiner.from_params(params.par).to(device)
    ordered = make_loader(items, params.size, params.batch_size, params.num_workers)
    write_cue_labels(model, ordered, bank, refiner, params.sce, device)
    _history(plan, "sce", history)
    return bank_path


def _initial_labels(plan: RefinePlan) -> LabelBank:
    """``labels-init.u8``: the source mask of each image (init=source) or its cue label."""
    size = plan.params.size
    cues = LabelBank.open(plan.path("cues.u8"), plan.count, size)
    init = LabelBank(plan.path("labels-init.u8"), plan.count, size)
    for row in load_items(plan, ["index", "mask_rle", "height", "width"]):
        mask = source_mask(row) if plan.params.init == "source" else None
        label = resize_mask(mask, size)[None] if mask is not None else cues.get([row["index"]])
        init.set([row["index"]], label)
    init.flush()
    return init


def run_detector_stage(run_dir: str | Path, log=print) -> Path:
    """Stage 2; returns the refined label bank path (``labels.u8``)."""
    plan = load_plan(run_dir)
    bank_path = plan.path("labels.u8")
    if _done(plan, "detector"):
        return bank_path
    params, device = plan.params, configure_torch(plan.params)
    generator = seed_everything(params.seed + 1)
    bank = _initial_labels(plan).copy_to(bank_path)
    model = build_detector(params.backbone, params.checkpoint)
    loader = make_loader(refine_items(plan), params.size, params.batch_size, params.num_workers, shuffle=True,
                         seed=params.seed)
    history = train_detector(model, loader, bank, params, device, generator=generator,
                             on_epoch=lambda e, s: log(f"detector epoch {e}: loss {s['loss']:.4f}, "
                                                       f"{s['spr_updates']} labels rectified"))
    save_checkpoint(model, plan.path("detector.pt"), "detector", params.backbone)
    _history(plan, "detector", history)
    return bank_path


def shard_output_fingerprint(plan: RefinePlan, source_shard: str | Path) -> str:
    return fingerprint(read_fingerprint(source_shard), plan.run_id)


def write_refined_shard(run_dir: str | Path, source_shard: str | Path) -> dict:
    """Refine one source shard into ``plan.out_path(source_shard)``; returns status counts."""
    plan = load_plan(run_dir)
    out, expected = plan.out_path(source_shard), shard_output_fingerprint(plan, source_shard)
    if not shard_is_current(out, expected):
        size, threshold = plan.params.size, plan.params.threshold
        labels = LabelBank.open(plan.path("labels.u8"), plan.count, size)
        cues = LabelBank.open(plan.path("cues.u8"), plan.count, size)
        index = {r["image_id"]: r["index"] for r in load_items(plan, ["image_id", "index", "shard"])
                 if r["shard"] == Path(source_shard).stem}
        rows = []
        for row in read_table(source_shard).to_pylist():
            i = index.get(row["image_id"])
            refined = cue = None
            if i is not None:
                size_hw = (row["height"], row["width"])
                refined = upsample_label(labels.array[i] / 255.0, size_hw) > threshold
                cue = upsample_label(cues.array[i] / 255.0, size_hw) > 0.5
            rows.append(refined_row(row, plan.run_id, plan.source_run, refined, cue))
        write_table_atomic(refined_table(rows), out, expected)
    statuses = read_table(out).column("status").to_pylist()
    return {"path": str(out), "counts": {s: statuses.count(s) for s in set(statuses)}}


def summarize_run(run_dir: str | Path) -> dict:
    """Counts and mean quality columns of a finished run's refined shards (also ``summary.json``)."""
    plan = load_plan(run_dir)
    rows = []
    for shard in plan.source_shards:
        rows.extend(read_table(plan.out_path(shard)).select(["status", "cue_agreement", "refine_change"]).to_pylist())
    statuses = [r["status"] for r in rows]

    def mean(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return round(float(np.mean(values)), 4) if values else None

    summary = {"run_id": plan.run_id, "source_run": plan.source_run, "images": len(rows),
               **{s: statuses.count(s) for s in ("ok", "no_object", "error")},
               "mean_cue_agreement": mean("cue_agreement"), "mean_refine_change": mean("refine_change"),
               "labels_dir": str(plan.out_dir), "run_dir": plan.run_dir}
    plan.path("summary.json").write_text(json.dumps(summary, indent=1))
    return summary
