"""Train the DEDecoder from scratch on real photos, then score it on a real test set with `sodforge evaluate`.

    .venv/bin/python benchmarks/train_real.py --train ../shared/realdata/DUTS-TR-3k --test ../shared/realdata/DUTS-TE-1k
    .venv/bin/python benchmarks/train_real.py --quick --train DIR --test DIR   # 240 / 120 pairs, 2 epochs
    .venv/bin/python benchmarks/train_real.py --quick                          # no data: generated shapes

``--train`` / ``--test`` take any data set folder whose layout ``find_layout`` knows (DUTS
``*-Image/`` + ``*-Mask/``; ECSSD/HKU-IS/PASCAL-S ``images/`` + ``masks/`` or ``gt/``). The steps are
the user's: true masks imported as label shards (``import-masks``), training with a named preset of
params.yaml (``sodforge train --preset cpu-real``), saliency maps for the test images
(``sodforge predict``), then ``sodforge evaluate`` (PySODMetrics; run as a subprocess).

The last line is one JSON object with the test set's ``MAE``, ``Smeasure``, ``maxFm``, ``meanEm``
(and the other contract-6 measures), training seconds (wall and CPU; per epoch), epochs, image
size, the resolved configuration and the machine's load average (other processes inflate wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def subset(folder: Path, count: int, out: Path) -> Path:
    """``out/images`` + ``out/masks`` holding symlinks to the first ``count`` pairs of ``folder``."""
    from engine.images.layout import find_layout
    from engine.images.manifest import scan_image_files
    from engine.sod.gt_import import find_mask

    layout = find_layout(folder).require("images", "masks")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    for image in scan_image_files(layout.images)[:count]:
        mask = find_mask(layout.masks, image.stem)
        if mask is None:
            continue
        for source, target in ((image, out / "images" / image.name), (mask, out / "masks" / mask.name)):
            if not target.exists():
                target.symlink_to(source.resolve())
    return out


def generated_sets(work: Path) -> tuple[Path, Path]:
    """Generated shapes with true masks, for a run without real data (figures mean nothing then)."""
    from engine.datasets import generate_sample_set

    generate_sample_set(work / "gen-train", count=96, size_hw=(96, 128), seed=11)
    generate_sample_set(work / "gen-test", count=32, size_hw=(96, 128), seed=12)
    return work / "gen-train", work / "gen-test"


def evaluate(pred: Path, test: Path, json_path: Path) -> dict:
    """``sodforge evaluate --pred PRED --gt TEST --json FILE`` in a subprocess; the data set's block."""
    command = [sys.executable, "-m", "sodforge", "evaluate", "--pred", str(pred), "--gt", str(test),
               "--json", str(json_path), "--worst", "0"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"sodforge evaluate failed ({done.returncode}): {done.stderr or done.stdout}")
    return next(iter(json.loads(json_path.read_text()).values()))


def train_and_score(args: argparse.Namespace, work: Path) -> dict:
    from engine.images.layout import find_layout
    from engine.images.manifest import scan_image_files
    from engine.sod.gt_import import import_mask_folder
    from engine.sod.model import load_model
    from engine.sod.params import load_train_params
    from engine.sod.predict import predict_paths
    from engine.sod.trainer import resolve_precision, train_sod
    from sodforge.commands.train import parse_sets

    data = "real"
    train, test = args.train, args.test
    if train is None or test is None:
        if not args.quick:
            raise SystemExit("give --train DIR and --test DIR (or --quick to run on generated shapes)")
        train, test, data = *generated_sets(work), "generated (figures mean nothing)"
    elif args.quick:
        train, test = subset(train, args.quick_train, work / "quick-train"), subset(test, args.quick_test, work / "quick-test")
    train_layout = find_layout(train).require("images", "masks")
    test_layout = find_layout(test).require("images", "masks")
    labels = import_mask_folder(train_layout.images, work / "labels", train_layout.masks).run_dir
    overrides = {**parse_sets(args.set or []), "labels": str(labels), "run_id": None}
    if args.epochs or args.quick:
        overrides["epochs"] = args.epochs or 2
    params = load_train_params(args.params, overrides, args.preset)

    load_before, cpu_before, started = os.getloadavg(), time.process_time(), time.perf_counter()
    result = train_sod(work / "model", params, progress=False, log=lambda m: print(m, file=sys.stderr, flush=True))
    train_wall, train_cpu = time.perf_counter() - started, time.process_time() - cpu_before
    load_after = os.getloadavg()

    model = load_model(result.model_path)
    started = time.perf_counter()
    predicted = predict_paths(model, scan_image_files(test_layout.images), work / "pred", batch_size=16,
                              device=args.device)
    predict_seconds = time.perf_counter() - started
    block = evaluate(work / "pred", test_layout.root, work / "metrics.json")
    history = result.history
    epoch_seconds = [round(r["train_seconds"], 1) for r in history]
    return {
        **{k: block[k] for k in ("MAE", "Smeasure", "maxFm", "meanEm", "wFmeasure", "adpFm", "meanFm", "adpEm",
                                 "maxEm")},
        "test_images": block["images"], "test_set": test_layout.name, "train_set": train_layout.name, "data": data,
        "train_images": history[-1]["train_images"] if history else 0, "val_images": history[-1].get("val_images", 0),
        "val_mae_at_training_size": history[-1].get("val_mae") if history else None,
        "epochs": params.epochs, "size_hw": list(params.size_hw), "preset": args.preset,
        "train_seconds": round(sum(r["train_seconds"] for r in history), 1),
        "train_wall_seconds": round(train_wall, 1), "train_cpu_seconds": round(train_cpu, 1),
        "epoch_seconds_mean": round(sum(epoch_seconds) / max(1, len(epoch_seconds)), 1), "epoch_seconds": epoch_seconds,
        "predict_seconds": round(predict_seconds, 1), "predict_errors": len(predicted.errors),
        "parameters": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
        "precision": resolve_precision(params.precision, params.accelerator),
        "device": "cuda" if torch.cuda.is_available() and params.accelerator in ("auto", "cuda", "gpu") else "cpu",
        "load_avg_before": [round(x, 2) for x in load_before], "load_avg_after": [round(x, 2) for x in load_after],
        "cpu_count": os.cpu_count(),
        "config": {k: v for k, v in params.result_params().items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, help="training set folder (DUTS-TR-style or images/ + masks/)")
    parser.add_argument("--test", type=Path, help="test set folder, scored with sodforge evaluate")
    parser.add_argument("--preset", default="cpu-real", help="train preset of params.yaml (default cpu-real)")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml", help="parameters file")
    parser.add_argument("--set", action="append", help="override a train parameter, e.g. --set epochs=10")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default="auto", help="prediction device: auto | cpu | cuda (training: the preset's accelerator)")
    parser.add_argument("--quick", action="store_true", help="a few minutes: subsets, 2 epochs")
    parser.add_argument("--quick-train", type=int, default=240)
    parser.add_argument("--quick-test", type=int, default=120)
    parser.add_argument("--work", type=Path, default=None, help="keep labels, model, predictions here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        result = train_and_score(args, args.work)
    else:
        with tempfile.TemporaryDirectory(prefix="train-real-") as tmp:
            result = train_and_score(args, Path(tmp))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
