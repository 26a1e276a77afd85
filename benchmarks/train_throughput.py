"""Training throughput of the SOD model: images/s of full training steps (forward, loss, backward,
optimizer), through Lightning Fabric with the run's precision (bf16-mixed on GPU, fp32 on CPU),
plus the data pipeline's images/s (label shards -> RLE decode -> image read -> resize).

    .venv/bin/python benchmarks/train_throughput.py --quick          # tiny backbone, CPU, ~1 minute
    .venv/bin/python benchmarks/train_throughput.py --backbone resnet50 --size 352 352 --batch-size 16

The last line is one JSON object: {"train_img_s": ..., "step_ms": ..., "data_img_s": ..., ...}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def model_throughput(args: argparse.Namespace) -> dict:
    """Timed training steps on fixed random batches (no I/O): the model's own speed."""
    from lightning_fabric import Fabric

    from engine.sod import ModelConfig, SODLoss, SODNet
    from engine.sod.trainer import resolve_precision

    precision = resolve_precision(args.precision, "auto")
    fabric = Fabric(accelerator="auto", devices=1, precision=precision)
    fabric.seed_everything(0, verbose=False)
    model = SODNet(ModelConfig(backbone=args.backbone, width=args.width, upsample=args.upsample,
                               edge_branch=not args.no_edge, size_hw=tuple(args.size)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = fabric.setup(model, optimizer)
    loss_fn = SODLoss()
    images = torch.rand(args.batch_size, 3, *args.size, device=fabric.device)
    masks = (torch.rand(args.batch_size, 1, *args.size, device=fabric.device) > 0.5).float()

    def step() -> None:
        out = model(images)
        total, _ = loss_fn(out.logits, masks, out.edge_logits)
        optimizer.zero_grad(set_to_none=True)
        fabric.backward(total)
        optimizer.step()

    for _ in range(args.warmup):
        step()
    if fabric.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if fabric.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {
        "train_img_s": args.steps * args.batch_size / seconds, "step_ms": 1000 * seconds / args.steps,
        "device": str(fabric.device), "precision": precision,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
    }


def data_throughput(size_hw: tuple[int, int], count: int) -> float:
    """Images/s of the dataset itself (RLE decode, image read, resize) on a generated set."""
    from engine.datasets import generate_sample_set
    from engine.sod.data import LabelShardDataset, find_label_shards, read_label_rows
    from engine.sod.gt_import import import_mask_folder

    with tempfile.TemporaryDirectory(prefix="train-throughput-") as tmp:
        generate_sample_set(Path(tmp) / "set", count=count, size_hw=(384, 512), seed=0, with_depth=False)
        run = import_mask_folder(Path(tmp) / "set", Path(tmp) / "labels").run_dir
        dataset = LabelShardDataset(read_label_rows(find_label_shards(run)), size_hw, hflip=True)
        started = time.perf_counter()
        for index in range(len(dataset)):
            dataset[index]
        return len(dataset) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description="SOD training throughput (images/s).")
    parser.add_argument("--quick", action="store_true", help="tiny backbone at 96x128 on CPU, few steps")
    parser.add_argument("--backbone", default=None, help="default: tiny with --quick or on CPU, else resnet50")
    parser.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--upsample", default="dynamic", choices=["dynamic", "bilinear"])
    parser.add_argument("--no-edge", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 keeps shared machines usable)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    small = args.quick or not torch.cuda.is_available()
    args.backbone = args.backbone or ("tiny" if small else "resnet50")
    args.size = args.size or ([96, 128] if small else [352, 352])
    args.batch_size = args.batch_size or (8 if small else 16)
    args.width = args.width or (16 if args.backbone == "tiny" else 64)
    args.steps = args.steps or (10 if small else 50)
    result = model_throughput(args)
    result["data_img_s"] = data_throughput(tuple(args.size), 16 if small else 64)
    print(f"{args.backbone} {args.size[0]}x{args.size[1]} batch {args.batch_size} on {result['device']} "
          f"({result['precision']}): {result['train_img_s']:.1f} img/s training, {result['data_img_s']:.1f} img/s data")
    print(json.dumps({"backbone": args.backbone, "size_hw": args.size, "batch_size": args.batch_size,
                      "width": args.width, "upsample": args.upsample, "edge_branch": not args.no_edge,
                      "threads": args.threads, **{k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}}))


if __name__ == "__main__":
    main()
