"""Does unsupervised refinement make labels better, or at least never worse? Measured on real photos.

``--data DIR`` is a folder of photos with true masks (DUTS-style ``*-Image/`` + ``*-Mask/``, or
``images/`` + ``masks/``). For the first ``--count`` pairs (sorted by name):

1. Two label sets are written as label shards: **corrupted** (every true mask given one
   foundation-model-style error from :mod:`engine.refine.corruptions`, kinds cycled over the images:
   box-shaped masks, missing parts, extra regions, spurious blobs, loose and tight outlines, holes)
   and **clean** (the true masks themselves).
2. Each set is refined exactly as ``sodforge refine --labels DIR --out OUT`` refines it (the same
   plan, stages, held-out gate and full-resolution write-back; no Prefect), and the written labels
   are scored against the true masks with the project's PySODMetrics wrapper
   (:class:`engine.metrics.SODMetrics`: MAE, max F with beta^2 = 0.3, S-measure).
3. For comparison (not a user path): ``ungated_spr`` = the SPR training label bank upsampled to full
   size and thresholded, which is what refinement wrote before this round (the issue's MAE
   0.086 -> 0.333); ``ungated_writeback`` = the final refined labels written back with the
   full-resolution, confidence-gated update (:mod:`engine.refine.update`) but without the gate,
   i.e. what ``refine.gate.enabled: false`` would write; ``par_only`` = the pixel-adaptive refiner run
   on the full-resolution photo over the source mask, with no learned weights at all.

Targets (issue 10, CPU tiny backbone): corrupted labels never get worse; clean labels' MAE rises by
at most 0.003. The gate's decision and its probe figures are printed. A pretrained backbone on a
GPU is the recommended configuration; this benchmark runs it the same way when the weights are at
hand: ``--backbone resnet50 --checkpoint moco_v2_200ep_pretrain.pth.tar --device cuda --size 320
--epochs 10 --lr 0.005``.

Run: ``.venv/bin/python benchmarks/refine_quality.py --data ../shared/realdata/DUTS-TE-1k [--quick]``;
the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.images import IMAGE_SUFFIXES, read_rgb  # noqa: E402
from engine.labeling.record import PseudoLabel, labels_to_table  # noqa: E402
from engine.masks import decode_rle, encode_rle  # noqa: E402
from engine.metrics import SODMetrics  # noqa: E402
from engine.params import load_section  # noqa: E402
from engine.refine.corruptions import corrupt_mask  # noqa: E402
from engine.refine.data import resize_mask, upsample_label  # noqa: E402
from engine.refine.par import pixel_adaptive_refine  # noqa: E402
from engine.refine.params import RefineParams  # noqa: E402
from engine.refine.plan import load_items, plan_label_folder_run  # noqa: E402
from engine.refine.spr import LabelBank  # noqa: E402
from engine.refine.stages import (  # noqa: E402
    run_cue_stage,
    run_detector_stage,
    run_gate_stage,
    summarize_run,
    write_refined_shard,
)
from engine.refine.update import update_label  # noqa: E402
from engine.storage import read_table, write_table_atomic  # noqa: E402


def find_pairs(root: Path) -> list[tuple[Path, Path]]:
    """``(image, mask)`` pairs matched by stem in ``root``'s image and mask folders."""
    dirs = [p for p in root.iterdir() if p.is_dir()]
    images = next((p for p in dirs if p.name.lower().endswith("image") or p.name.lower() in ("images", "image")), None)
    masks = next((p for p in dirs if p.name.lower().endswith("mask") or p.name.lower() in ("masks", "gt")), None)
    if images is None or masks is None:
        raise SystemExit(f"{root}: need an image folder (*-Image/ or images/) and a mask folder (*-Mask/, masks/ or gt/)")
    by_stem = {p.stem: p for p in masks.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    return [(p, by_stem[p.stem]) for p in sorted(images.iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in by_stem]


def write_label_shards(folder: Path, pairs: list[tuple[Path, Path]], masks: list[np.ndarray], shard_size: int = 256) -> None:
    """Label shards (the labelling schema) with ``masks`` as the labels of ``pairs``' images."""
    for start in range(0, len(pairs), shard_size):
        shard = f"shard-{start // shard_size:05d}"
        labels = []
        for (image, _), mask in zip(pairs[start : start + shard_size], masks[start : start + shard_size], strict=True):
            labels.append(PseudoLabel(image.stem, str(image), folder.name, shard, "ok", height=mask.shape[0],
                                      width=mask.shape[1], mask_rle=encode_rle(mask), mask_area_frac=float(mask.mean())))
        write_table_atomic(labels_to_table(labels), folder / f"{shard}.parquet")


def score(labels: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, float]:
    """MAE, max F and S-measure of bool/float ``(H, W)`` labels against bool truths (PySODMetrics)."""
    acc = SODMetrics()
    for label, truth in zip(labels, truths, strict=True):
        acc.step((np.clip(label.astype(np.float32), 0, 1) * 255).round().astype(np.uint8), truth.astype(np.uint8) * 255)
    metrics = acc.results().metrics
    return {"MAE": round(metrics["MAE"], 4), "maxFm": round(metrics["maxFm"], 4), "Smeasure": round(metrics["Smeasure"], 4)}


def per_kind_mae(labels: list[np.ndarray], truths: list[np.ndarray], kinds: list[str]) -> dict[str, float]:
    groups = defaultdict(list)
    for label, truth, kind in zip(labels, truths, kinds, strict=True):
        groups[kind].append(float(np.mean(label != truth)))
    return {k: round(float(np.mean(v)), 4) for k, v in sorted(groups.items())}


def refine_folder(source: Path, out: Path, params: RefineParams) -> tuple[dict, dict, dict, dict]:
    """Run the refinement stages on a label folder; returns the summary and, by stem, the written masks,
    the ungated SPR bank masks and the ungated write-back masks."""
    plan = plan_label_folder_run(source, out, params)
    for stage in (run_cue_stage, run_detector_stage, run_gate_stage):
        stage(plan.run_dir, log=lambda message: print(f"  {message}", flush=True))
    for shard in plan.source_shards:
        write_refined_shard(plan.run_dir, shard)
    summary = summarize_run(plan.run_dir)
    written = {}
    for shard in plan.source_shards:
        for row in read_table(plan.out_path(shard)).to_pylist():
            size_hw = (row["height"], row["width"])  # a label that is not ok scores as an empty map
            written[Path(row["path"]).stem] = (decode_rle(row["mask_rle"], size_hw) if row["status"] == "ok"
                                               else np.zeros(size_hw, bool))
    bank = LabelBank.open(plan.path("labels.u8"), plan.count, params.size)
    final = LabelBank.open(plan.path("labels-final.u8"), plan.count, params.size)
    ungated, writeback = {}, {}
    for r in load_items(plan, ["index", "path", "height", "width", "mask_rle"]):
        stem, size_hw = Path(r["path"]).stem, (r["height"], r["width"])
        ungated[stem] = upsample_label(bank.array[r["index"]] / 255.0, size_hw) > params.threshold
        source = decode_rle(r["mask_rle"], size_hw)
        image = read_rgb(r["path"]) if params.update.guide else None
        writeback[stem] = update_label(source, resize_mask(source, params.size)[0].numpy(), final.array[r["index"]] / 255.0,
                                       image, params.update, params.par).mask
    return summary, written, ungated, writeback


def par_only(pairs: list[tuple[Path, Path]], masks: list[np.ndarray], params: RefineParams) -> list[np.ndarray]:
    """The source masks after the pixel-adaptive refiner on the full-resolution photo (no learned weights)."""
    out = []
    for (image_path, _), mask in zip(pairs, masks, strict=True):
        image = torch.from_numpy(read_rgb(image_path)).permute(2, 0, 1)[None].float() / 255.0
        soft = pixel_adaptive_refine(image, torch.from_numpy(mask.astype(np.float32))[None, None], params.par.dilations,
                                     params.par.iterations, params.par.temperature, params.par.pos_weight, normalize=False)
        out.append(soft[0, 0].numpy() > 0.5)
    return out


def run_variant(name: str, pairs, masks, truths, kinds, params: RefineParams, tmp: Path) -> dict:
    print(f"[{name}] refining {len(pairs)} labels", flush=True)
    source = tmp / f"labels-{name}" / f"run={name}"
    write_label_shards(source, pairs, masks)
    started = time.perf_counter()
    summary, written, ungated, writeback = refine_folder(source, tmp / f"refined-{name}", params)
    stems = [image.stem for image, _ in pairs]
    result = {
        "source": score(masks, truths),
        "written": score([written[s] for s in stems], truths),
        "ungated_spr": score([ungated[s] for s in stems], truths),
        "ungated_writeback": score([writeback[s] for s in stems], truths),
        "decision": summary["decision"], "reason": summary["reason"], "actions": summary["actions"],
        "probe": summary["probe"], "mean_refine_change": summary["mean_refine_change"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    if kinds is not None:
        result["per_kind_mae"] = {"source": per_kind_mae(masks, truths, kinds),
                                  "written": per_kind_mae([written[s] for s in stems], truths, kinds)}
    print(f"[{name}] {json.dumps({k: v for k, v in result.items() if k != 'probe'})}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="photos + true masks (DUTS-style or images/ + masks/)")
    parser.add_argument("--quick", action="store_true", help="CPU-sized run: 120 images, size 64, 8 epochs")
    parser.add_argument("--count", type=int, default=None, help="pairs to use (default: all; --quick: 120)")
    parser.add_argument("--size", type=int, default=None, help="training side in px (default 96; --quick 64)")
    parser.add_argument("--epochs", type=int, default=None, help="detector epochs (default 14; --quick 8)")
    parser.add_argument("--backbone", default="tiny")
    parser.add_argument("--checkpoint", default=None, help="pretrained backbone weights (e.g. MoCo-v2 ResNet-50)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lr", type=float, default=0.05, help="detector learning rate (0.05 tiny; paper 0.005 for ResNet-50)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--params", type=Path, default=Path(__file__).resolve().parents[1] / "params.yaml",
                        help="params.yaml whose refine section (gate, update, par, spr...) is used")
    parser.add_argument("--variants", default="corrupted,clean")
    parser.add_argument("--no-par-only", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1 if args.device == "cpu" else max(1, torch.get_num_threads()))
    torch.set_flush_denormal(True)
    warnings.filterwarnings("ignore", category=UserWarning)
    count = args.count or (120 if args.quick else None)
    size, epochs = args.size or (64 if args.quick else 96), args.epochs or (8 if args.quick else 14)
    pairs = find_pairs(args.data)[:count]
    truths = [np.asarray(Image.open(m).convert("L")) > 128 for _, m in pairs]
    rng = np.random.default_rng(args.seed)
    corrupted = [corrupt_mask(t, rng, index=i) for i, t in enumerate(truths)]
    kinds = [k for _, k in corrupted]
    overrides = {"backbone": args.backbone, "checkpoint": args.checkpoint, "size": size, "device": args.device,
                 "threads": None, "num_workers": 0, "seed": args.seed, "batch_size": args.batch_size,
                 "sce": {"epochs": 2}, "detector": {"epochs": epochs, "lr": args.lr},
                 "spr": {"start_epoch": max(1, epochs // 3 + 1)}}
    params = load_section(args.params, "refine", RefineParams, overrides=overrides)
    started = time.perf_counter()
    result: dict = {"data": str(args.data), "images": len(pairs), "size": size, "epochs": epochs,
                    "backbone": args.backbone, "pretrained": args.checkpoint is not None, "device": args.device,
                    "corruptions": sorted(set(kinds))}
    with tempfile.TemporaryDirectory(prefix="refine-quality-") as tmp:
        for name in args.variants.split(","):
            masks = [m for m, _ in corrupted] if name == "corrupted" else truths
            result[name] = run_variant(name, pairs, masks, truths, kinds if name == "corrupted" else None, params, Path(tmp))
    if not args.no_par_only and "corrupted" in result:
        refined = par_only(pairs, [m for m, _ in corrupted], params)
        result["par_only_corrupted"] = {"scores": score(refined, truths), "per_kind_mae": per_kind_mae(refined, truths, kinds)}
    if "corrupted" in result:
        c = result["corrupted"]
        result["corrupted_mae_before"], result["corrupted_mae_after"] = c["source"]["MAE"], c["written"]["MAE"]
        result["corrupted_not_worse"] = c["written"]["MAE"] <= c["source"]["MAE"] + 1e-4
        result["corrupted_mae_cut"] = round(1 - c["written"]["MAE"] / c["source"]["MAE"], 4)
    if "clean" in result:
        result["clean_mae_rise"] = round(result["clean"]["written"]["MAE"] - result["clean"]["source"]["MAE"], 4)
        result["clean_rise_ok"] = result["clean_mae_rise"] <= 0.003
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
