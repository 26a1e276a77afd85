"""Images/s of our labelling path vs a naive Grounded-SAM-style loop, same models, same images, one run.

Ours: ``engine.labeling.label_shard`` (manifest shard -> Parquet) with a ``Labeler``: batches of
``--batch-size`` images, decoding on ``--workers`` CPU threads one batch ahead, BLIP and
GroundingDINO batched, one SAM embedding per image (batched) and all of an image's boxes decoded in
one call. Naive: as Grounded-SAM's demo, one image at a time: decode, caption, GroundingDINO, SAM
embedding, then one SAM decoder call per box; the same phrase/box/merge/quality code afterwards.

  --quick           tiny models on CPU (measures our per-image overhead, not model speed)
  --real            real-size random-init BLIP-large, GroundingDINO Swin-T, SAM ViT-H (bf16 on CUDA),
                    with FLOPs per image (torch.utils.flop_counter) and the share of the GPU's bf16 peak
  --real --device cpu --images 1   exercises the real-size code path on CPU (slow; a smoke run)

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.images import read_rgb  # noqa: E402
from engine.labeling import Labeler, LabelModels, label_shard  # noqa: E402
from engine.labeling.boxes import select_boxes  # noqa: E402
from engine.labeling.phrase import extract_phrase  # noqa: E402
from engine.labeling.quality import measure  # noqa: E402
from engine.masks import encode_rle  # noqa: E402
from engine.models.adapters.sam import stability_score  # noqa: E402
from engine.params import LabelParams  # noqa: E402

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}


def naive_sam(segmenter, image: np.ndarray, boxes: np.ndarray, threshold: float):
    """One embedding, then one decoder call per box (Grounded-SAM demo style); same outputs as ours."""
    processed = segmenter.processor.image_processor([image], return_tensors="pt")
    original, reshaped = processed["original_sizes"][0].tolist(), processed["reshaped_input_sizes"][0].tolist()
    runtime, model = segmenter.runtime, segmenter.model
    masks, ious, stabilities = [], [], []
    with torch.inference_mode(), runtime.autocast():
        embedding = model.get_image_embeddings(processed["pixel_values"].to(runtime.device))
        for box in boxes:
            scaled = segmenter._scale_boxes(box[None], original, reshaped)[None].to(runtime.device)
            out = model(image_embeddings=embedding, input_boxes=scaled, multimask_output=True)
            iou = out.iou_scores[0, 0].float()
            best = int(iou.argmax())
            logits = segmenter.processor.post_process_masks(
                out.pred_masks[0, 0, best].float()[None, None, None].cpu(), [original], [reshaped], binarize=False
            )[0][:, 0]
            masks.append((logits > threshold).numpy()[0])
            ious.append(float(iou[best]))
            stabilities.append(float(stability_score(logits, threshold)[0]))
    return np.stack(masks), np.array(ious, np.float32), np.array(stabilities, np.float32)


def naive_loop(models: LabelModels, paths: list[str], p: LabelParams) -> list[str]:
    statuses = []
    for path in paths:
        image = read_rgb(path)
        caption = models.captioner.caption([image], p.caption_prompt, p.max_new_tokens, p.num_beams)[0]
        phrase = extract_phrase(caption)
        if not phrase.text:
            statuses.append("no_object")
            continue
        detections = models.grounder.detect([image], [phrase.text], p.box_threshold, p.text_threshold)[0]
        detections = select_boxes(detections, p.nms_iou, p.max_boxes, p.box_policy, phrase.category)
        if not len(detections):
            statuses.append("no_object")
            continue
        masks, ious, stabilities = naive_sam(models.segmenter, image, detections.boxes_xyxy, p.mask_threshold)
        merged = masks.any(axis=0)
        if merged.any():
            measure(merged, detections.scores, ious, stabilities, detections.boxes_xyxy)
            encode_rle(merged)
        statuses.append("ok" if merged.any() else "no_object")
    return statuses


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_ours(models: LabelModels, params: LabelParams, manifest: Path, out: Path) -> dict[str, int]:
    labeler = Labeler(models, params, "bench")
    result = label_shard(manifest, out, labeler)
    return result.counts


def tiny_models(workdir: Path, device: str) -> LabelModels:
    from engine.models import build_tiny_models
    from engine.models.registry import load_model
    from engine.models.runtime import resolve_runtime
    from engine.params import ModelSpec

    runtime = resolve_runtime(device, "auto")
    dirs = build_tiny_models(workdir / "tiny")
    return LabelModels(*(load_model(ModelSpec(f, str(dirs[f])), runtime) for f in ("blip", "grounding_dino", "sam")))


def _synthetic_bert_tokenizer(workdir: Path, size: int, dec_token: bool):
    """A bert-base-sized vocabulary (special tokens at bert-base-uncased ids) built offline."""
    from transformers import BertTokenizer

    from engine.models.tiny import _FIXED_IDS, _pseudo_words

    syllables = _pseudo_words()
    words = iter(syllables + [a + b for a in syllables[:400] for b in syllables[:400]])
    vocab = [_FIXED_IDS.get(i) or next(words) for i in range(size - (1 if dec_token else 0))]
    vocab += ["[DEC]"] if dec_token else []
    path = workdir / f"vocab-{size}.txt"
    path.write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(path), do_lower_case=True)
    if dec_token:
        tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    return tokenizer


def real_models(workdir: Path, device: str) -> LabelModels:
    """Real-size, randomly initialised BLIP-large / GroundingDINO Swin-T / SAM ViT-H (same speed as trained)."""
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessorPil,
        GroundingDinoProcessor,
        SamConfig,
        SamImageProcessorPil,
        SamModel,
        SamProcessor,
        SwinConfig,
    )

    from engine.models.adapters import BlipCaptioner, GroundingDinoGrounder, SamSegmenter
    from engine.models.runtime import resolve_runtime

    runtime = resolve_runtime(device, "auto")
    blip_config = BlipConfig(
        text_config=dict(vocab_size=30524, bos_token_id=30523, pad_token_id=0, sep_token_id=102, eos_token_id=102),
        vision_config=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                           image_size=384, patch_size=16, initializer_range=0.02),
    )
    swin = SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7, out_indices=[2, 3, 4])
    sam_config = SamConfig(vision_config=dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16,
                                              global_attn_indexes=[7, 15, 23, 31], initializer_range=0.02))
    built = []
    for cls, config in ((BlipForConditionalGeneration, blip_config), (GroundingDinoForObjectDetection, GroundingDinoConfig(backbone_config=swin)),
                        (SamModel, sam_config)):
        try:  # as engine.models.adapters.common.from_pretrained: SDPA where the model has it
            model = cls._from_config(copy.deepcopy(config), attn_implementation="sdpa")
        except (ValueError, ImportError):
            model = cls(config)
        built.append(model.to(runtime.device).eval())
    blip_processor = BlipProcessor(BlipImageProcessorPil(size={"height": 384, "width": 384}), _synthetic_bert_tokenizer(workdir, 30524, True))
    gdino_processor = GroundingDinoProcessor(GroundingDinoImageProcessorPil(), _synthetic_bert_tokenizer(workdir, 30522, False))
    sam_processor = SamProcessor(SamImageProcessorPil())
    return LabelModels(
        BlipCaptioner(built[0], blip_processor, runtime, "blip-large-random"),
        GroundingDinoGrounder(built[1], gdino_processor, runtime, "gdino-swint-random"),
        SamSegmenter(built[2], sam_processor, runtime, "sam-vit-h-random"),
    )


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


def _prepare_images(workdir: Path, count: int, size_hw: tuple[int, int]) -> tuple[Path, list[str]]:
    from engine.datasets import generate_sample_set
    from engine.images.manifest import ingest
    from engine.storage import read_table

    generate_sample_set(workdir / "set", count=count, size_hw=size_hw, seed=7, with_depth=False)
    result = ingest(workdir / "set", workdir / "manifest", shard_size=count)
    manifest = result.shard_paths[0]
    return manifest, [row["path"] for row in read_table(manifest).to_pylist()]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny models on CPU (default mode)")
    parser.add_argument("--real", action="store_true", help="real-size random-init models (GPU)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda (default: cpu for --quick, auto for --real)")
    parser.add_argument("--images", type=int, default=None, help="images per path (default 48 quick, 256 real)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 8 quick, 32 real")
    parser.add_argument("--workers", type=int, default=2, help="decode threads")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--peak-tflops", type=float, default=None, help="bf16 dense peak of the GPU, if not in the table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    real = args.real
    device = args.device or ("auto" if real else "cpu")
    count = args.images or (256 if real else 48)
    size_hw = (480, 640) if real else (96, 128)
    params = LabelParams(batch_size=args.batch_size or (32 if real else 8), decode_workers=args.workers)
    with tempfile.TemporaryDirectory(prefix="label-bench-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        models = (real_models if real else tiny_models)(workdir, device)
        print(f"models built in {time.perf_counter() - started:.1f} s on {models.captioner.runtime.device}", flush=True)
        manifest, paths = _prepare_images(workdir, count, size_hw)
        torch_device = models.captioner.runtime.device
        warm_manifest, warm_paths = _prepare_images(workdir / "warm", min(2, count), size_hw)
        run_ours(models, params, warm_manifest, workdir / "warm.parquet")  # first-call costs out of the timings
        naive_loop(models, warm_paths, params)
        _sync(torch_device)
        started = time.perf_counter()
        counts = run_ours(models, params, manifest, workdir / "labels.parquet")
        _sync(torch_device)
        ours_s = time.perf_counter() - started
        started = time.perf_counter()
        naive_statuses = naive_loop(models, paths, params)
        _sync(torch_device)
        naive_s = time.perf_counter() - started
        result = {
            "mode": "real" if real else "quick", "device": str(torch_device),
            "device_name": torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda" else "cpu",
            "images": count, "size_hw": list(size_hw), "batch_size": params.batch_size,
            "ours_img_s": round(count / ours_s, 3), "naive_img_s": round(count / naive_s, 3),
            "ratio": round(naive_s / ours_s, 3), "ours_ms_per_img": round(1000 * ours_s / count, 2),
            "naive_ms_per_img": round(1000 * naive_s / count, 2), "ours_statuses": counts,
            "naive_statuses": {s: naive_statuses.count(s) for s in set(naive_statuses)},
        }
        if real:
            flops = flops_per_image(models, params, paths[0])
            peak = peak_flops(torch_device, args.peak_tflops)
            result["tflops_per_image"] = round(flops / 1e12, 4)
            result["flop_share"] = round(flops * result["ours_img_s"] / peak, 4) if peak else None
    print(f"ours : {result['ours_img_s']:.2f} img/s ({result['ours_ms_per_img']:.1f} ms/img) {result['ours_statuses']}")
    print(f"naive: {result['naive_img_s']:.2f} img/s ({result['naive_ms_per_img']:.1f} ms/img) {result['naive_statuses']}")
    print(f"ratio: {result['ratio']:.2f}x")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
