"""The stages of a planned refinement run, each taking the run directory and writing files in it.

1. :func:`run_cue_stage`: train the SCE with PCL-SD, write ``sce.pt`` and the cue labels ``cues.u8``.
2. :func:`run_detector_stage`: initial labels (source masks, or cues where there is none / when
   ``init: cues``) into ``labels-init.u8``; copy to ``labels.u8``; train the detector with SPR
   rewriting ``labels.u8`` on the training images (the held-out ones never train it); write
   ``detector.pt``.
3. :func:`run_gate_stage`: every image's final refined label (``labels-final.u8``: the trained
   detector's prediction + the SPR rule, one operator for all images) and the self-check on the
   held-out images (:mod:`engine.refine.gate`); writes ``gate.json`` (the decision and its figures).
4. :func:`write_refined_shard`: one source label shard -> one refined shard (atomic, fingerprinted):
   final labels applied to the source at full resolution (:mod:`engine.refine.update`) when the gate
   passed, the source labels otherwise.

A stage whose ``<stage>.done`` marker exists is skipped (resume); the run id already pins inputs and
parameters.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from engine.images import read_rgb
from engine.images.paths import shard_root, to_stored
from engine.refine.data import make_loader, resize_mask, resolve_device, upsample_label
from engine.refine.gate import ProbeResult, ProbeSample, decide, probe_sample, spr_rounds, summarize_probe
from engine.refine.models import build_cue_extractor, build_detector
from engine.refine.par import PixelAdaptiveRefiner
from engine.refine.plan import (
    RefinePlan,
    load_items,
    load_plan,
    refine_items,
    row_image_id,
    row_status,
    source_rows,
)
from engine.refine.records import refined_row, refined_table, reject_full_mask, source_mask
from engine.refine.spr import LabelBank
from engine.refine.train import train_cue_extractor, train_detector, write_cue_labels
from engine.refine.update import ACTIONS, update_label
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
    items = refine_items(plan, holdout=False)
    if not items:
        raise ValueError(f"{plan.source_dir}: no images left to train the detector on after the held-out split")
    loader = make_loader(items, params.size, params.batch_size, params.num_workers, shuffle=True, seed=params.seed)
    history = train_detector(model, loader, bank, params, device, generator=generator,
                             on_epoch=lambda e, s: log(f"detector epoch {e}: loss {s['loss']:.4f}, "
                                                       f"{s['spr_updates']} labels rectified"))
    save_checkpoint(model, plan.path("detector.pt"), "detector", params.backbone)
    _history(plan, "detector", history)
    return bank_path


def spr_round_count(params) -> int:
    """How many times SPR rewrote a training label (once per epoch from ``start_epoch``)."""
    return max(0, params.detector.epochs - params.spr.start_epoch) if params.spr.enabled else 0


def _load_detector(plan: RefinePlan, device: torch.device) -> torch.nn.Module:
    model = build_detector(plan.params.backbone, None)
    model.load_state_dict(torch.load(plan.path("detector.pt"), map_location="cpu", weights_only=True)["state_dict"])
    return model.to(device).eval()


def _predictions(plan: RefinePlan, device: torch.device):
    """Yield ``(indices, probs, r_pri)`` per batch over every image, in index order: the trained
    detector's prediction and its pixel-adaptive refinement, both ``(B, 1, S, S)`` in [0, 1] on CPU."""
    params = plan.params
    model, refiner = _load_detector(plan, device), PixelAdaptiveRefiner.from_params(params.par).to(device)
    for batch in make_loader(refine_items(plan), params.size, params.batch_size, params.num_workers):
        images = batch["image"].to(device)
        with torch.no_grad():
            probs = torch.sigmoid(model(images, batch["second"].to(device)))
            r_pri = refiner(images, probs)
        yield batch["index"].tolist(), probs.cpu(), r_pri.cpu()


def _probe_one(plan: RefinePlan, row: dict, probs: torch.Tensor, r_pri: torch.Tensor, start: torch.Tensor,
               n: int, rng: np.random.Generator, result: ProbeResult) -> None:
    params = plan.params
    image = read_rgb(row["path"]) if params.update.guide else None
    sample = ProbeSample(source_mask(row), image, probs[0].numpy(), r_pri[0].numpy(),
                         start[0].numpy() if params.init == "cues" else None)
    probe_sample(sample, n, rng, params.gate, params.spr.weights, spr_round_count(params), params.update, params.par,
                 result)


def run_gate_stage(run_dir: str | Path, log=print) -> dict:
    """Stage 3: every image's final refined label, and the held-out check; returns ``gate.json``.

    Final labels (``labels-final.u8``) come from one operator for every image: the trained
    detector's prediction and the SPR rule, repeated for as many rounds as SPR ran in training,
    started from the initial label. The probe (:mod:`engine.refine.gate`) applies that same operator
    and the full-resolution write-back to the held-out images, which the detector never saw.
    """
    plan = load_plan(run_dir)
    path = plan.path("gate.json")
    if _done(plan, "gate") and path.is_file():
        return json.loads(path.read_text())
    params, device = plan.params, configure_torch(plan.params)
    held = {r["index"]: r for r in load_items(plan, holdout=True)}  # only these rows: memory stays bounded
    init = LabelBank.open(plan.path("labels-init.u8"), plan.count, params.size)
    final = LabelBank(plan.path("labels-final.u8"), plan.count, params.size)
    result, rng, rounds, probed = ProbeResult(), np.random.default_rng(params.seed), spr_round_count(params), 0
    for indices, probs, r_pri in _predictions(plan, device):
        start = init.get(indices)
        final.set(indices, spr_rounds(r_pri, probs, start, params.spr.weights, rounds))
        for j, index in enumerate(indices):
            if params.gate.enabled and index in held and held[index]["mask_rle"]:
                _probe_one(plan, held[index], probs[j], r_pri[j], start[j], probed, rng, result)
                probed += 1
    final.flush()
    if not params.gate.enabled:
        gate = {"passed": None, "decision": "unverified", "checks": {}, "probe": None,
                "reason": "refine.gate.enabled is false: refined labels were written without checking them"}
    else:
        probe = summarize_probe(result)
        gate = {**decide(probe, params.gate), "probe": probe}
    gate.update(spr_rounds=rounds, pretrained_backbone=params.checkpoint is not None)
    log(f"refinement gate: {gate['decision']}: {gate['reason']}")
    path.write_text(json.dumps(gate, indent=1))
    _history(plan, "gate", [])
    return gate


def shard_output_fingerprint(plan: RefinePlan, source_shard: str | Path) -> str:
    return fingerprint(read_fingerprint(source_shard), plan.run_id)


def load_gate(plan: RefinePlan) -> dict:
    path = plan.path("gate.json")
    if not path.is_file():
        raise ValueError(f"{path}: the gate stage has not run; run it before writing refined shards")
    return json.loads(path.read_text())


def _copied_reason(row: dict, image_id: str | None, plan: RefinePlan) -> str | None:
    if image_id in plan.skipped:
        return plan.skipped[image_id]
    if row_status(row) == "error":
        return "source row has status error"
    if not row.get("mask_rle"):
        return "source has no mask: nothing to refine"
    return None


def _refine_rows(plan: RefinePlan, source_shard: str | Path, gate: dict) -> list[dict]:
    params = plan.params
    labels = LabelBank.open(plan.path("labels-final.u8"), plan.count, params.size)
    cues = LabelBank.open(plan.path("cues.u8"), plan.count, params.size)
    index = {r["image_id"]: r["index"] for r in load_items(plan, ["image_id", "index", "shard"])
             if r["shard"] == Path(source_shard).stem}
    apply = gate["decision"] in ("refined", "unverified")
    rows = []
    out_root = shard_root(plan.out_path(source_shard))
    for row in source_rows(source_shard):
        row.setdefault("shard", Path(source_shard).stem)
        image_id = row.get("image_id") or row_image_id(row)
        i, source = index.get(image_id), source_mask(row)
        if i is None or source is None:
            out = refined_row(row, plan.run_id, plan.source_run, None, None, "copied", _copied_reason(row, image_id, plan))
        elif not apply:
            out = refined_row(row, plan.run_id, plan.source_run, None, _cue(cues, i, source.shape), "kept_source",
                              "refinement run did not pass its check: " + gate["reason"])
        else:
            init = resize_mask(source, params.size)[0].numpy()
            image = read_rgb(row["path"]) if params.update.guide else None
            update = update_label(source, init, labels.array[i] / 255.0, image, params.update, params.par)
            out = refined_row(row, plan.run_id, plan.source_run, update, _cue(cues, i, source.shape))
        out["path"] = to_stored(out["path"], out_root)  # relative to the refined shard's own root
        rows.append(reject_full_mask(out, params.update.reject_source_above))
    return rows


def _cue(cues: LabelBank, index: int, size_hw: tuple[int, int]) -> np.ndarray:
    return upsample_label(cues.array[index] / 255.0, size_hw) > 0.5


def write_refined_shard(run_dir: str | Path, source_shard: str | Path) -> dict:
    """Refine one source shard into ``plan.out_path(source_shard)``; returns status counts."""
    plan = load_plan(run_dir)
    out, expected = plan.out_path(source_shard), shard_output_fingerprint(plan, source_shard)
    if not shard_is_current(out, expected):
        write_table_atomic(refined_table(_refine_rows(plan, source_shard, load_gate(plan))), out, expected)
    statuses = read_table(out).column("status").to_pylist()
    return {"path": str(out), "counts": {s: statuses.count(s) for s in set(statuses)}}


def summarize_run(run_dir: str | Path) -> dict:
    """Counts, the gate's decision and mean refinement columns of a finished run (also ``summary.json``).

    ``labels_verified`` is True only when the gate passed: then ``labels_dir`` holds labels shown not
    to be worse than the source; otherwise it holds the source labels (``decision: kept_source``) or
    unchecked refined labels (``decision: unverified``, gate disabled).
    """
    plan = load_plan(run_dir)
    gate = load_gate(plan)
    columns = ["status", "cue_agreement", "refine_change", "refine_action"]
    rows = []
    for shard in plan.source_shards:
        rows.extend(read_table(plan.out_path(shard)).select(columns).to_pylist())
    statuses, actions = [r["status"] for r in rows], [r["refine_action"] for r in rows]

    def mean(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return round(float(np.mean(values)), 4) if values else None

    summary = {"run_id": plan.run_id, "source_run": plan.source_run, "images": len(rows),
               **{s: statuses.count(s) for s in ("ok", "no_object", "error")},
               "decision": gate["decision"], "labels_verified": gate["passed"] is True, "reason": gate["reason"],
               "actions": {a: actions.count(a) for a in ACTIONS if a in actions},
               "mean_cue_agreement": mean("cue_agreement"), "mean_refine_change": mean("refine_change"),
               "probe": gate.get("probe"), "pretrained_backbone": gate.get("pretrained_backbone"),
               "source_dir": plan.source_dir, "labels_dir": plan.out_dir, "run_dir": plan.run_dir}
    plan.path("summary.json").write_text(json.dumps(summary, indent=1))
    return summary
