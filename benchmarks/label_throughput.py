"""Images/s of our labelling path vs Grounded-SAM's demo loop: same models, same photos, one run.

Ours: ``engine.labeling.label_shard`` (manifest shard -> Parquet): decode + resize + pad + normalise
on ``--workers`` threads one batch ahead, BLIP ``generate`` per batch, GroundingDINO per canvas
bucket, one SAM encoder call per batch and one decoder call for all boxes, mask upscaling /
quality / RLE on ``--finish-workers`` threads.
Naive (as Grounded-SAM's demo): one image at a time, transformers processors on the calling
thread: caption, GroundingDINO, SAM embedding, ONE SAM call with all boxes (``multimask_output``
as ``label.sam_multimask``, default False), post-processing; the same phrase/box/quality/RLE code.

  --quick        tiny models fed at the real processors' input sizes (BLIP 384, GroundingDINO
                 800x1333, SAM 1024) on CPU: measures everything around the models
  --real         real-size random-init BLIP-large, GroundingDINO Swin-T, SAM ViT-H (bf16 on CUDA),
                 plus FLOPs per image, share of the GPU's bf16 peak, peak GPU memory, GPU busy share
  --data DIR     photos (a DUTS-style set, an images/ folder or any image folder); a seeded sample
                 of ``--images`` of them. Without it: generated images of eight mixed sizes.

``overhead_ms_per_img`` = (wall time - time inside the models' forward/generate calls) / images;
on CUDA the model time is GPU time between CUDA events. ``agreement`` compares our labels with the
naive loop's (single image, processors, no padding): same status/category, box and mask drift.
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.images import read_rgb  # noqa: E402
from engine.images.io import IMAGE_SUFFIXES  # noqa: E402
from engine.labeling import Labeler, LabelModels, PseudoLabel, extract_phrase, label_shard  # noqa: E402
from engine.labeling.boxes import select_boxes  # noqa: E402
from engine.labeling.quality import measure  # noqa: E402
from engine.masks import decode_rle, encode_rle  # noqa: E402
from engine.models import timing  # noqa: E402
from engine.models.adapters.grounding_dino import clean_label, grounding_prompt  # noqa: E402
from engine.models.adapters.sam import stability_score  # noqa: E402
from engine.models.outputs import Detections  # noqa: E402
from engine.params import LabelParams  # noqa: E402
from engine.storage import read_table  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}
MIXED_SIZES_HW = [(300, 400), (267, 400), (400, 300), (400, 400), (480, 640), (333, 500), (375, 500), (500, 375)]
MODEL_STAGES = ("caption", "ground", "segment")


def naive_label(models: LabelModels, image_id: str, path: str, p: LabelParams) -> PseudoLabel:
    """Grounded-SAM's demo for one image, with the transformers processors on this thread."""
    cap, gd, sam = models.captioner, models.grounder, models.segmenter
    device, dtype = cap.runtime.device, cap.runtime.dtype
    with timing.timed("decode"):
        image = read_rgb(path)
    height, width = image.shape[:2]
    base = dict(image_id=image_id, path=path, run_id="naive", shard="naive", height=height, width=width)
    with timing.timed("preprocess"):
        inputs = cap.processor(images=[image], text=[p.caption_prompt] if p.caption_prompt else None, return_tensors="pt")
    with torch.inference_mode(), cap.runtime.autocast(), timing.timed("caption", device):
        ids = cap.model.generate(**_on(inputs, device, dtype), max_new_tokens=p.max_new_tokens, num_beams=p.num_beams)
    caption = " ".join(cap.processor.batch_decode(ids.cpu(), skip_special_tokens=True)[0].split())
    phrase = extract_phrase(caption)
    text = dict(caption=caption, phrase=phrase.text, category=phrase.category or None)
    if not phrase.text:
        return PseudoLabel(**base, status="no_object", error="no phrase", **text)
    with timing.timed("preprocess"):
        inputs = gd.processor(images=[image], text=[grounding_prompt(phrase.text)], return_tensors="pt")
    with torch.inference_mode(), gd.runtime.autocast(), timing.timed("ground", device):
        out = gd.model(**_on(inputs, device, dtype))
    out.logits, out.pred_boxes = out.logits.float(), out.pred_boxes.float()
    found = gd.processor.post_process_grounded_object_detection(
        out, inputs["input_ids"], threshold=p.box_threshold, text_threshold=p.text_threshold, target_sizes=[(height, width)]
    )[0]
    boxes = found["boxes"].cpu().float().numpy().reshape(-1, 4)
    boxes[:, [0, 2]], boxes[:, [1, 3]] = boxes[:, [0, 2]].clip(0, width), boxes[:, [1, 3]].clip(0, height)
    labels = [clean_label(t) for t in found["text_labels"]] if len(boxes) else []
    det = select_boxes(Detections(boxes, found["scores"].cpu().float().numpy(), labels), p.nms_iou, p.max_boxes,
                       p.box_policy, phrase.category)
    if not len(det):
        return PseudoLabel(**base, status="no_object", error="no box", **text)
    with timing.timed("preprocess"):
        inputs = sam.processor(images=[image], input_boxes=[det.boxes_xyxy.tolist()], return_tensors="pt")
    with torch.inference_mode(), sam.runtime.autocast(), timing.timed("segment", device):
        embedding = sam.model.get_image_embeddings(inputs["pixel_values"].to(device, dtype))
        out = sam.model(image_embeddings=embedding, input_boxes=inputs["input_boxes"].to(device),
                        multimask_output=p.sam_multimask)
    with timing.timed("finish"):
        iou = out.iou_scores[0].float()  # (N, K)
        best = iou.argmax(-1)
        rows = torch.arange(len(best), device=best.device)
        low = out.pred_masks[0, rows, best].float()[:, None].cpu()
        logits = sam.processor.post_process_masks(low[None], inputs["original_sizes"], inputs["reshaped_input_sizes"],
                                                  binarize=False)[0][:, 0]
        merged = (logits > p.mask_threshold).numpy().any(axis=0)
        if not merged.any():
            return PseudoLabel(**base, status="no_object", error="empty mask", **text)
        signals = measure(merged, det.scores, iou[rows, best].cpu().numpy(), stability_score(logits, p.mask_threshold).numpy(),
                          det.boxes_xyxy)
        return PseudoLabel(**base, status="ok", mask_rle=encode_rle(merged), boxes_xyxy=det.boxes_xyxy.round(2).tolist(),
                           box_scores=det.scores.tolist(), box_labels=det.labels, **text, **vars(signals))


def _on(inputs, device, dtype) -> dict:
    return {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in inputs.items() if torch.is_tensor(v)}


def agreement(ours: list[dict], naive: list[PseudoLabel]) -> dict:
    """How far our labels are from the naive loop's: statuses, categories, boxes (px), masks (IoU)."""
    by_id = {row["image_id"]: row for row in ours}
    pairs = [(by_id[n.image_id], n) for n in naive if n.image_id in by_id]
    box_px, mask_iou = [], []
    for o, n in pairs:
        if o["phrase"] == n.phrase and o["boxes_xyxy"] and n.boxes_xyxy and len(o["boxes_xyxy"]) == len(n.boxes_xyxy):
            box_px.append(float(np.abs(np.asarray(o["boxes_xyxy"]) - np.asarray(n.boxes_xyxy)).max()))
        if o["mask_rle"] and n.mask_rle:
            a, b = decode_rle(o["mask_rle"], (o["height"], o["width"])), decode_rle(n.mask_rle, (n.height, n.width))
            mask_iou.append(float((a & b).sum() / max(1, (a | b).sum())))
    box_px_arr, iou_arr = np.asarray(box_px or [np.nan]), np.asarray(mask_iou or [np.nan])
    return {
        "images": len(pairs),
        "same_status": round(float(np.mean([o["status"] == n.status for o, n in pairs])), 4),
        "same_category": round(float(np.mean([o["category"] == n.category for o, n in pairs])), 4),
        "same_caption": round(float(np.mean([o["caption"] == n.caption for o, n in pairs])), 4),
        "box_images": len(box_px), "box_px_median": round(float(np.median(box_px_arr)), 3),
        "box_px_p95": round(float(np.percentile(box_px_arr, 95)), 3), "box_px_max": round(float(np.max(box_px_arr)), 3),
        "box_within_1px": round(float(np.mean(box_px_arr <= 1.0)), 4),
        "mask_images": len(mask_iou), "mask_iou_median": round(float(np.median(iou_arr)), 4),
        "mask_iou_p5": round(float(np.percentile(iou_arr, 5)), 4), "mask_iou_min": round(float(np.min(iou_arr)), 4),
        "mask_iou_ge_0.9": round(float(np.mean(iou_arr >= 0.9)), 4),
    }


def pick_images(data: Path | None, count: int, workdir: Path, seed: int) -> Path:
    """A folder of ``count`` image links: a seeded sample of ``data``'s photos, or generated mixed sizes."""
    out = workdir / "set" / "images"
    out.mkdir(parents=True)
    if data is None:
        from engine.datasets import generate_sample_set

        sources = []
        for index, size_hw in enumerate(MIXED_SIZES_HW):
            made = generate_sample_set(workdir / f"gen{index}", count=-(-count // len(MIXED_SIZES_HW)), size_hw=size_hw,
                                       seed=seed + index, with_depth=False)
            sources += sorted((workdir / f"gen{index}" / "images").glob("*")) if made else []
        random.Random(seed).shuffle(sources)
    else:
        candidates = [d for d in data.iterdir() if d.is_dir() and (d.name.endswith("-Image") or d.name == "images")]
        root = candidates[0] if candidates else data
        sources = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and "mask" not in str(p.parent).lower())
        if not sources:
            raise SystemExit(f"{data}: no images found")
        sources = random.Random(seed).sample(sources, min(count, len(sources)))
    for index, source in enumerate(sources[:count]):
        (out / f"{index:05d}{source.suffix.lower()}").symlink_to(source.resolve())
    return out.parent


def tiny_models(workdir: Path, device: str) -> LabelModels:
    from engine.models import build_tiny_models
    from engine.models.registry import load_model
    from engine.models.runtime import resolve_runtime
    from engine.params import ModelSpec

    runtime = resolve_runtime(device, "auto")
    dirs = build_tiny_models(workdir / "tiny", real_sizes=True)
    return LabelModels(*(load_model(ModelSpec(f, str(dirs[f])), runtime) for f in ("blip", "grounding_dino", "sam")))


def _ingest(folder: Path, workdir: Path, name: str) -> tuple[Path, list[dict]]:
    from engine.images.manifest import ingest

    count = len(list((folder / "images").iterdir()))
    manifest = ingest(folder, workdir / name, shard_size=max(1, count)).shard_paths[0]
    return manifest, read_table(manifest).to_pylist()


class BusySampler:
    """Samples NVML GPU utilisation (share of time a kernel ran) every 50 ms, where NVML is present."""

    def __init__(self, device: torch.device):
        self.device, self.samples, self._stop = device, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.samples.append(torch.cuda.utilization(self.device))
            except Exception:  # noqa: BLE001 - no NVML (pynvml missing): no figure
                return

    def __enter__(self) -> BusySampler:
        if self.device.type == "cuda":
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    @property
    def busy(self) -> float | None:
        return round(float(np.mean(self.samples)) / 100, 4) if self.samples else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _stage_ms(times: timing.StageTimes, images: int) -> dict[str, float]:
    return {stage: round(1000 * s / images, 2) for stage, s in sorted(times.seconds().items())}


def run_ours(models, params, manifest, out) -> tuple[float, dict, list[dict]]:
    device = models.captioner.runtime.device
    with timing.collect() as times:
        started = time.perf_counter()
        label_shard(manifest, out, Labeler(models, params, "bench"))
        _sync(device)
        wall = time.perf_counter() - started
    return wall, times, read_table(out).to_pylist()


def run_naive(models, params, rows) -> tuple[float, dict, list[PseudoLabel]]:
    from engine.labeling import labels_to_table
    from engine.storage import write_table_atomic

    device = models.captioner.runtime.device
    with timing.collect() as times, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        labels = [naive_label(models, row["image_id"], row["path"], params) for row in rows]
        with timing.timed("write"):
            write_table_atomic(labels_to_table(labels), Path(tmp) / "naive.parquet", "naive")
        _sync(device)
        wall = time.perf_counter() - started
    return wall, times, labels


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny models at real input sizes on CPU (default mode)")
    parser.add_argument("--real", action="store_true", help="real-size random-init models (GPU)")
    parser.add_argument("--data", type=Path, default=None, help="folder of photos (DUTS-style set or image folder)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda (default: cpu for --quick, auto for --real)")
    parser.add_argument("--images", type=int, default=None, help="images per path (default 48 quick, 256 real)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 4 quick, 32 real")
    parser.add_argument("--workers", type=int, default=None, help="prepare (decode/resize/normalise) threads (2 quick, 6 real)")
    parser.add_argument("--finish-workers", type=int, default=LabelParams.finish_workers, help="mask upscale / quality / RLE threads")
    parser.add_argument("--ground-pad-multiple", type=int, default=LabelParams.ground_pad_multiple)
    parser.add_argument("--sam-multimask", action="store_true", help="three SAM masks per box, best IoU kept (both paths)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the image encoders (--real)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--warmup", type=int, default=4, help="images run once through both paths before timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 dense peak of the GPU, if not in the table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    real = args.real
    device = args.device or ("auto" if real else "cpu")
    count = args.images or (256 if real else 48)
    params = LabelParams(batch_size=args.batch_size or (32 if real else 4), decode_workers=args.workers or (6 if real else 2),
                         finish_workers=args.finish_workers, ground_pad_multiple=args.ground_pad_multiple,
                         sam_multimask=args.sam_multimask)
    with tempfile.TemporaryDirectory(prefix="label-bench-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        if real:
            from benchmarks_support import real_models  # noqa: PLC0415 - real-size configs live beside this script

            models = real_models(workdir, device, args.compile)
        else:
            models = tiny_models(workdir, device)
        torch_device = models.captioner.runtime.device
        print(f"models built in {time.perf_counter() - started:.1f} s on {torch_device}", flush=True)
        image_set = pick_images(args.data, count, workdir, args.seed)
        manifest, rows = _ingest(image_set, workdir, "manifest")
        sizes = sorted({(r["height"], r["width"]) for r in rows})
        if args.warmup > 0:  # first-call costs (allocations, compilation) out of the timings
            warm_set = pick_images(args.data, args.warmup, workdir / "warm", args.seed + 1)
            warm_manifest, warm_rows = _ingest(warm_set, workdir, "warm-manifest")
            run_ours(models, params, warm_manifest, workdir / "warm.parquet")
            run_naive(models, params, warm_rows)
        if torch_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(torch_device)
        with BusySampler(torch_device) as sampler:
            ours_s, ours_times, ours_rows = run_ours(models, params, manifest, workdir / "labels.parquet")
        naive_s, naive_times, naive_labels = run_naive(models, params, rows)
        n = len(rows)
        model_s = sum(ours_times.seconds().get(s, 0.0) for s in MODEL_STAGES)
        naive_model_s = sum(naive_times.seconds().get(s, 0.0) for s in MODEL_STAGES)
        result = {
            "mode": "real" if real else "quick", "device": str(torch_device),
            "device_name": torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda" else "cpu",
            "data": str(args.data) if args.data else "generated", "images": n, "distinct_sizes": len(sizes),
            "batch_size": params.batch_size, "ground_pad_multiple": params.ground_pad_multiple,
            "sam_multimask": params.sam_multimask, "threads": args.threads, "workers": params.decode_workers,
            "ours_img_s": round(n / ours_s, 3), "naive_img_s": round(n / naive_s, 3), "ratio": round(naive_s / ours_s, 3),
            "ours_ms_per_img": round(1000 * ours_s / n, 2), "naive_ms_per_img": round(1000 * naive_s / n, 2),
            "overhead_ms_per_img": round(1000 * (ours_s - model_s) / n, 2),
            # of which: model thread outside model calls, and model thread waiting (pipeline fill/drain, write)
            "model_thread_other_ms_per_img": round(1000 * (ours_times.seconds().get("model_thread", 0.0) - model_s) / n, 2),
            "model_thread_wait_ms_per_img": round(1000 * (ours_s - ours_times.seconds().get("model_thread", 0.0)) / n, 2),
            "naive_overhead_ms_per_img": round(1000 * (naive_s - naive_model_s) / n, 2),
            "stage_ms_per_img": _stage_ms(ours_times, n), "naive_stage_ms_per_img": _stage_ms(naive_times, n),
            "model_calls": ours_times.calls(), "naive_model_calls": naive_times.calls(),
            "ours_statuses": _counts(r["status"] for r in ours_rows),
            "naive_statuses": _counts(label.status for label in naive_labels),
            "agreement": agreement(ours_rows, naive_labels),
        }
        if torch_device.type == "cuda":
            result["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated(torch_device) / 2**30, 2)
            result["gpu_busy_share"] = sampler.busy
            result["gpu_model_time_share"] = round(model_s / ours_s, 4)
        if real:
            flops = flops_per_image(models, params, rows[0]["path"])
            peak = peak_flops(torch_device, args.peak_tflops)
            result["tflops_per_image"] = round(flops / 1e12, 4)
            result["bf16_peak_share"] = round(flops * result["ours_img_s"] / peak, 4) if peak else None
    print(f"ours : {result['ours_img_s']:.2f} img/s ({result['ours_ms_per_img']:.1f} ms/img, overhead "
          f"{result['overhead_ms_per_img']:.1f} ms/img) {result['ours_statuses']}")
    print(f"naive: {result['naive_img_s']:.2f} img/s ({result['naive_ms_per_img']:.1f} ms/img) {result['naive_statuses']}")
    print(f"ratio: {result['ratio']:.2f}x   stages (ms/img): {result['stage_ms_per_img']}")
    print(f"agreement with the naive loop: {result['agreement']}")
    print(json.dumps(result))
    return result


def _counts(values) -> dict[str, int]:
    values = list(values)
    return {v: values.count(v) for v in sorted(set(values))}


def flops_per_image(models: LabelModels, params: LabelParams, path: str) -> float:
    """FLOPs of our path on one image (matmul/conv/attention counted by FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    from engine.labeling import ImageItem

    item = ImageItem("flops", path, rgb=read_rgb(path))
    with FlopCounterMode(display=False) as counter:
        Labeler(models, params, "flops").label_batch([item], "flops")
    return float(counter.get_total_flops())


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tflops * 1e12 for key, tflops in PEAK_BF16_TFLOPS.items() if key in name), None)


if __name__ == "__main__":
    main()
