"""Does unsupervised refinement make labels better? Measured on generated images with known masks.

1. Generate images with true masks (``engine.datasets.generate_sample_set``).
2. Corrupt every true mask with one documented corruption (``engine.refine.corruptions``: erosion,
   dilation, holes, false blobs, shifted box; cycled over the images) -> the noisy starting labels.
3. Train the two-stream detector on them with SPR (``engine.refine.train.train_detector``, the same
   code as the ``refine-labels`` flow) and score the label bank against the true masks after every
   round (= epoch): MAE, max F (beta^2 = 0.3) and S-measure (PySODMetrics), soft labels at full size.
   Also run without SPR (labels never change) and with SPR but no prior (R_pri weight 0) as ablations.
4. Train the saliency cue extractor with PCL-SD and with plain saliency distilling on the same images
   and score the cue maps and cue labels (the paper's ablation).

Run: ``.venv/bin/python benchmarks/refine_quality.py [--quick]``; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.datasets import generate_sample_set  # noqa: E402
from engine.refine.corruptions import corrupt_mask  # noqa: E402
from engine.refine.cues import cues_to_labels  # noqa: E402
from engine.refine.data import RefineItem, make_loader, resize_mask, upsample_label  # noqa: E402
from engine.refine.models import build_cue_extractor, build_detector  # noqa: E402
from engine.refine.par import PixelAdaptiveRefiner  # noqa: E402
from engine.refine.params import DetectorParams, RefineParams, SCEParams, SPRParams  # noqa: E402
from engine.refine.spr import LabelBank  # noqa: E402
from engine.refine.stages import seed_everything  # noqa: E402
from engine.refine.train import extract_cues, train_cue_extractor, train_detector  # noqa: E402


def label_metrics(labels: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, float]:
    """MAE, max F and S-measure of soft labels (``(H, W)`` float in [0, 1]) against bool truths."""
    from py_sod_metrics import MAE, Fmeasure, Smeasure

    mae, fm, sm = MAE(), Fmeasure(), Smeasure()
    for label, truth in zip(labels, truths, strict=True):
        pred = (np.clip(label, 0, 1) * 255).astype(np.uint8)
        gt = truth.astype(np.uint8) * 255
        for metric in (mae, fm, sm):
            metric.step(pred=pred, gt=gt)
    return {"mae": round(float(mae.get_results()["mae"]), 4),
            "max_f": round(float(fm.get_results()["fm"]["curve"].max()), 4),
            "s_measure": round(float(sm.get_results()["sm"]), 4)}


def bank_metrics(bank: LabelBank, truths: list[np.ndarray]) -> dict[str, float]:
    labels = [upsample_label(bank.array[i] / 255.0, t.shape) for i, t in enumerate(truths)]
    return label_metrics(labels, truths)


def make_data(root: Path, count: int, size_hw: tuple[int, int], seed: int):
    generate_sample_set(root, count=count, size_hw=size_hw, seed=seed)
    stems = sorted(p.stem for p in (root / "images").glob("*.jpg"))
    items = [RefineItem(i, stem, str(root / "images" / f"{stem}.jpg"), str(root / "depth" / f"{stem}.png"))
             for i, stem in enumerate(stems)]
    truths = [np.array(Image.open(root / "masks" / f"{stem}.png")) > 127 for stem in stems]
    rng = np.random.default_rng(seed)
    noisy = [corrupt_mask(t, rng, index=i) for i, t in enumerate(truths)]
    return items, truths, [n for n, _ in noisy], [k for _, k in noisy]


def spr_rounds(items, truths, noisy, params: RefineParams, bank_path: Path, label: str) -> list[dict]:
    """Train the detector on the noisy labels; label metrics before and after every round."""
    generator = seed_everything(params.seed)
    bank = LabelBank(bank_path, len(items), params.size)
    for i, mask in enumerate(noisy):
        bank.set([i], resize_mask(mask, params.size)[None])
    rounds = [{"round": 0, **bank_metrics(bank, truths)}]
    loader = make_loader(items, params.size, params.batch_size, shuffle=True, seed=params.seed)

    def on_epoch(epoch: int, stats: dict) -> None:
        rounds.append({"round": epoch + 1, "loss": round(stats["loss"], 4), **bank_metrics(bank, truths)})
        print(f"[{label}] round {epoch + 1}: {rounds[-1]}", flush=True)

    print(f"[{label}] round 0 (noisy start): {rounds[0]}", flush=True)
    model = build_detector(params.backbone)
    train_detector(model, loader, bank, params, torch.device("cpu"), on_epoch=on_epoch, generator=generator)
    return rounds


def cue_quality(items, truths, params: RefineParams, pcl: bool) -> dict:
    """Train the SCE with PCL-SD (``pcl``) or plain SD; score cue maps and cue labels."""
    generator = seed_everything(params.seed)
    sce = replace(params.sce, pcl=pcl)
    model = build_cue_extractor(params.backbone)
    loader = make_loader(items, params.size, params.batch_size, shuffle=True, seed=params.seed)
    train_cue_extractor(model, loader, sce, torch.device("cpu"), generator=generator)
    refiner = PixelAdaptiveRefiner.from_params(params.par)
    maps, labels = [], []
    ordered = make_loader(items, params.size, params.batch_size)
    for _indices, images, cues in extract_cues(model, ordered, torch.device("cpu"), sce.corner_frac):
        binary = cues_to_labels(images, cues, refiner, sce.median)
        maps.extend(c[0].numpy() for c in cues)
        labels.extend(b[0].numpy() for b in binary)
    full = [upsample_label(m, t.shape) for m, t in zip(maps, truths, strict=True)]
    full_labels = [upsample_label(m, t.shape) for m, t in zip(labels, truths, strict=True)]
    return {"cue_maps": label_metrics(full, truths), "cue_labels": label_metrics(full_labels, truths)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CPU-sized run (a few minutes)")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--backbone", default="tiny")
    args = parser.parse_args()
    torch.set_num_threads(1 if args.quick else max(1, torch.get_num_threads()))
    torch.set_flush_denormal(True)
    warnings.filterwarnings("ignore", category=UserWarning)
    count = args.count or (96 if args.quick else 192)
    epochs = args.epochs or (14 if args.quick else 20)
    size = 64 if args.quick else 96
    # SPR starts once the detector has seen enough iterations to beat the labels: the paper's
    # "from epoch 2" is ~1,300 iterations on DUTS-TR; here an epoch is only count / 4 iterations.
    params = RefineParams(backbone=args.backbone, size=size, batch_size=4, num_workers=0, device="cpu",
                          sce=SCEParams(epochs=10, lr=0.1), detector=DetectorParams(epochs=epochs, lr=0.05),
                          spr=SPRParams(start_epoch=max(1, epochs // 3 + 1)))
    variants = {"spr": params.spr.weights, "no_prior": (0.0, 0.8, 0.2)}
    if not args.quick:
        variants["code_weights"] = (0.1, 0.7, 0.2)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="refine-bench-") as tmp:
        items, truths, noisy, kinds = make_data(Path(tmp) / "set", count, (96, 128), seed=7)
        runs = {name: spr_rounds(items, truths, noisy, replace(params, spr=replace(params.spr, weights=weights)),
                                 Path(tmp) / f"{name}.u8", f"{name} {weights}")
                for name, weights in variants.items()}
        cues = {"pcl_sd": cue_quality(items, truths, params, pcl=True),
                "plain_sd": cue_quality(items, truths, params, pcl=False)}
    start, end = runs["spr"][0], runs["spr"][-1]
    result = {
        "images": count, "size": size, "epochs": epochs, "spr_start_epoch": params.spr.start_epoch,
        "backbone": args.backbone, "corruptions": sorted(set(kinds)),
        "noisy_mae": start["mae"], "spr_mae": end["mae"], "spr_mae_reduction": round(1 - end["mae"] / start["mae"], 4),
        "noisy_max_f": start["max_f"], "spr_max_f": end["max_f"],
        "noisy_s": start["s_measure"], "spr_s": end["s_measure"],
        **{f"{name}_mae": rounds[-1]["mae"] for name, rounds in runs.items() if name != "spr"},
        "rounds": runs["spr"], "cues": cues, "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
