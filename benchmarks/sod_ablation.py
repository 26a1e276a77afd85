"""Ablation of the DEDecoder on the generated sample set (true masks known): dynamic vs bilinear
upsampling, with and without the edge branch, same data, same seeds.

Each variant is trained on the true-mask import of the sample set (train split) with the tiny
backbone on CPU, then predicts the held-out split at original size; MAE, S-measure and max F
(pysodmetrics) are computed against the true masks.

    .venv/bin/python benchmarks/sod_ablation.py [--quick] [--seeds 0 1 2] [--epochs N]

The last line is one JSON object: {"variants": {name: {"mae": ..., ...}}, ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {
    "dynamic+edge": {"upsample": "dynamic", "edge_branch": True},
    "bilinear+edge": {"upsample": "bilinear", "edge_branch": True},
    "dynamic-noedge": {"upsample": "dynamic", "edge_branch": False},
    "bilinear-noedge": {"upsample": "bilinear", "edge_branch": False},
}


def score(pred_dir: Path, masks_dir: Path) -> dict[str, float]:
    """pysodmetrics MAE / S-measure / max F of every PNG in ``pred_dir`` against ``masks_dir``."""
    from PIL import Image
    from py_sod_metrics import MAE, Fmeasure, Smeasure

    mae, sm, fm = MAE(), Smeasure(), Fmeasure()
    preds = sorted(pred_dir.glob("*.png"))
    for pred_path in preds:
        pred = np.asarray(Image.open(pred_path).convert("L"))
        gt = np.asarray(Image.open(masks_dir / pred_path.name).convert("L"))
        for metric in (mae, sm, fm):
            metric.step(pred=pred, gt=gt)
    return {"mae": float(mae.get_results()["mae"]), "smeasure": float(sm.get_results()["sm"]),
            "max_fm": float(fm.get_results()["fm"]["curve"].max()), "images": len(preds)}


def run_variant(name: str, options: dict, labels: Path, masks: Path, work: Path, seed: int, base: dict) -> dict:
    from engine.sod.params import TrainParams
    from engine.sod.predict import predict
    from engine.sod.trainer import train_sod

    params = TrainParams(labels=str(labels), seed=seed, **base, **options)
    out = work / f"{name}-seed{seed}"
    started = time.perf_counter()
    result = train_sod(out / "model", params, progress=False, log=lambda _: None)
    seconds = time.perf_counter() - started
    predict(result.model_path, out / "pred", labels=labels, split="val", val_fraction=params.val_fraction,
            seed=seed, device="cpu")
    return {**score(out / "pred", masks), "train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed instead of three (a few CPU minutes)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--count", type=int, default=48, help="sample images to generate")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    from engine.datasets import generate_sample_set
    from engine.sod.gt_import import import_mask_folder

    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    base = {"epochs": args.epochs or 40, "size_hw": (96, 128), "batch_size": 8, "lr": 0.01}
    with tempfile.TemporaryDirectory(prefix="sod-ablation-") as tmp:
        work = Path(tmp)
        generate_sample_set(work / "sample", count=args.count, size_hw=(192, 256), seed=0, with_depth=False)
        labels = import_mask_folder(work / "sample", work / "labels").run_dir
        results: dict[str, dict] = {}
        for name in args.variants:
            runs = [run_variant(name, VARIANTS[name], labels, work / "sample" / "masks", work, s, base) for s in seeds]
            results[name] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
            results[name]["mae_per_seed"] = [round(r["mae"], 4) for r in runs]
            print(f"{name:16s} MAE {results[name]['mae']:.4f}  S {results[name]['smeasure']:.4f}  "
                  f"maxF {results[name]['max_fm']:.4f}  ({results[name]['train_seconds']:.1f} s/run)", flush=True)
    print(json.dumps({"variants": results, "seeds": seeds, **base, "images": args.count, "backbone": "tiny"}))


if __name__ == "__main__":
    main()
