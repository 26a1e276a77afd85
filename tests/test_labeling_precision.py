"""Reduced precision (bf16 weights + autocast) against fp32, on the same tiny models and images.

Each test runs twice: ``cpu-bf16`` (bf16 weights forced on CPU: same code path, always runs) and
``cuda-bf16`` (marked ``gpu``: bf16 weights on CUDA, uint8 upload + GPU normalisation; skipped
without CUDA). The fp32 reference always runs on CPU.

Tolerances, measured with cpu-bf16 on these models (random tiny models are chaotic: a rounding
change flips near-tied tokens and GroundingDINO proposals, so end-to-end agreement is statistical)
and set with a >= 3x margin where the quantity is continuous:

* BLIP teacher-forced logits: relative L2 error <= 0.03 (measured 0.007), argmax agreement >= 0.9 (0.98).
* GroundingDINO proposal boxes (encoder grid + box head, kept fp32): <= 0.05 px (measured 0.0;
  0.42 px on this 192 px canvas when the grid runs in bf16, ~4 px at 1333).
* SAM box prompt embedding <= 0.02 (0.005; 1.9 when the Fourier features run in bf16), image
  embeddings relative error <= 0.03 (0.007), low-res mask logits <= 0.2 (0.07; 0.66 without the
  fp32 Fourier features), full-size mask IoU median >= 0.85 (0.96).
* Whole labeller (24 images, mixed sizes, max_new_tokens 4): same status >= 90% (100%), same
  category >= 50% (79%), merged-mask IoU median >= 0.5 (0.83), no errors.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from engine.images import read_rgb
from engine.labeling import Labeler, LabelModels
from engine.masks import decode_rle
from engine.models.preprocess import collate
from engine.models.registry import clear_model_cache, load_model
from engine.models.runtime import Runtime, resolve_runtime
from engine.params import LabelParams, ModelSpec

FAMILIES = {"blip": "captioner", "grounding_dino": "grounder", "sam": "segmenter"}


def _reduced_runtime(kind: str) -> Runtime:
    if kind == "cuda-bf16":
        return resolve_runtime("cuda", "auto")  # bf16 weights (fp16 where bf16 is missing)
    return Runtime(torch.device("cpu"), torch.bfloat16, torch.bfloat16)


@pytest.fixture(scope="module", params=["cpu-bf16", pytest.param("cuda-bf16", marks=pytest.mark.gpu)])
def pair(request, tiny_models_dir) -> tuple[LabelModels, LabelModels]:
    """(fp32 on CPU, reduced precision) label models built from the same tiny checkpoints."""
    def build(runtime: Runtime) -> LabelModels:
        clear_model_cache()
        loaded = {role: load_model(ModelSpec(family, str(tiny_models_dir / family)), runtime) for family, role in FAMILIES.items()}
        clear_model_cache()
        return LabelModels(**loaded)

    return build(Runtime(torch.device("cpu"), None)), build(_reduced_runtime(request.param))


@pytest.fixture(scope="module")
def images(tiny_models_dir, session_tmp) -> list[np.ndarray]:
    from engine.datasets import generate_sample_set

    out = session_tmp / "precision-set"
    if not out.exists():
        generate_sample_set(out, count=24, size_hw=(96, 128), seed=3, with_depth=False)
    rgbs = [read_rgb(p) for p in sorted((out / "images").glob("*.jpg"))]
    return rgbs[:12] + [cv2.resize(rgb, (150, 90)) for rgb in rgbs[12:]]  # two sizes, two canvases


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    got, want = got.detach().float().cpu(), want.detach().float().cpu()
    return float((got - want).norm() / want.norm())


def _pixels(model, images, normalize_now=True, transform=None):
    transform = transform or model.transform
    return collate([transform.resize(i) for i in images], [i.shape[:2] for i in images], transform, normalize_now)


def test_uploaded_uint8_batches_normalise_like_the_cpu_path(pair, images):
    _, low = pair
    for model in (low.captioner, low.grounder, low.segmenter):
        on_cpu = _pixels(model, images[:3]).pixels
        uploaded = _pixels(model, images[:3], normalize_now=False).to_model(low.runtime.device, torch.float32)
        torch.testing.assert_close(uploaded.cpu(), on_cpu, atol=1e-6, rtol=0)


def test_blip_teacher_forced_logits(pair, images):
    ref, low = pair
    pixels = _pixels(ref.captioner, images[:8])
    with torch.inference_mode():
        ids = ref.captioner.model.generate(pixel_values=pixels.pixels, max_new_tokens=10)
        want = ref.captioner.model(pixel_values=pixels.pixels, input_ids=ids).logits
        with low.runtime.autocast():
            got = low.captioner.model(pixel_values=pixels.to_model(low.runtime.device, low.runtime.dtype),
                                      input_ids=ids.to(low.runtime.device)).logits
    assert _rel(got, want) <= 0.03
    assert (got.float().cpu().argmax(-1) == want.argmax(-1)).float().mean() >= 0.9


def test_grounding_coordinates_stay_fp32(pair, images):
    ref, low = pair
    transform = ref.grounder.transform.with_pad_multiple(32)
    pixels = _pixels(ref.grounder, images[:12], transform=transform)
    text = ref.grounder.processor.tokenizer(["red disk."] * 12, padding=True, return_tensors="pt")

    def proposals(grounder, device, dtype):
        inputs = {k: v.to(device) for k, v in text.items()}
        with torch.inference_mode(), grounder.runtime.autocast():
            out = grounder.model(**inputs, pixel_values=pixels.to_model(device, dtype), pixel_mask=pixels.valid_mask(device))
        height, width = pixels.canvas_hw
        return out.enc_outputs_coord_logits.float().sigmoid().cpu() * torch.tensor([width, height, width, height])

    want = proposals(ref.grounder, torch.device("cpu"), torch.float32)
    got = proposals(low.grounder, low.runtime.device, low.runtime.dtype)
    finite = torch.isfinite(want).all(-1) & torch.isfinite(got).all(-1)
    assert finite.float().mean() > 0.5
    assert (got - want).abs()[finite].max() <= 0.05


def test_sam_prompts_embeddings_and_masks(pair, images):
    ref, low = pair
    boxes = torch.tensor([[[10.3, 10.7, 80.2, 70.6]], [[30.0, 20.0, 120.0, 90.0]]])
    with torch.inference_mode():
        want = ref.segmenter.model.prompt_encoder(input_points=None, input_labels=None, input_boxes=boxes, input_masks=None)[0]
        with low.runtime.autocast():
            got = low.segmenter.model.prompt_encoder(
                input_points=None, input_labels=None, input_boxes=boxes.to(low.runtime.device), input_masks=None
            )[0]
    assert (got.float().cpu() - want).abs().max() <= 0.02

    pixels = _pixels(ref.segmenter, images)
    image_boxes = [np.array([[10, 10, 80, 70], [30, 20, 120, 90]], np.float32)] * len(images)
    want_emb, got_emb = ref.segmenter.embed(pixels), low.segmenter.embed(pixels)
    assert _rel(got_emb, want_emb) <= 0.03
    want_low = ref.segmenter.decode(want_emb, pixels, image_boxes)
    got_low = low.segmenter.decode(got_emb, pixels, image_boxes)
    assert np.mean([_rel(g.logits, w.logits) for g, w in zip(got_low, want_low, strict=True)]) <= 0.2
    ious = []
    for g, w in zip(got_low, want_low, strict=True):
        for a, b in zip(low.segmenter.finish(g).masks, ref.segmenter.finish(w).masks, strict=True):
            union = (a | b).sum()
            ious.append((a & b).sum() / union if union else 1.0)
    assert np.median(ious) >= 0.85


def test_labeller_end_to_end(pair, images, tmp_path_factory):
    """Whole shards through ``label_shard`` (prefetch threads, uint8 upload on CUDA, finish threads)."""
    from engine.images.manifest import ingest
    from engine.labeling import label_shard
    from engine.storage import read_table

    folder = tmp_path_factory.mktemp("precision-images")
    (folder / "images").mkdir()
    for index, rgb in enumerate(images):
        cv2.imwrite(str(folder / "images" / f"im{index:02d}.png"), rgb[:, :, ::-1])
    manifest = ingest(folder, folder / "manifest", shard_size=len(images)).shard_paths[0]
    params = LabelParams(max_new_tokens=4, box_threshold=0.2, batch_size=8)
    rows = {}
    for name, models in zip(("want", "got"), pair, strict=True):
        out = folder / f"{name}.parquet"
        label_shard(manifest, out, Labeler(models, params, "r"))
        rows[name] = sorted(read_table(out).to_pylist(), key=lambda row: row["path"])
    want, got = rows["want"], rows["got"]
    assert len(got) == len(images) and all(g["status"] != "error" for g in got), [g["error"] for g in got]
    assert np.mean([g["status"] == w["status"] for g, w in zip(got, want, strict=True)]) >= 0.9
    assert np.mean([g["category"] == w["category"] for g, w in zip(got, want, strict=True)]) >= 0.5
    ious = []
    for g, w in zip(got, want, strict=True):
        if g["mask_rle"] and w["mask_rle"]:
            a, b = decode_rle(g["mask_rle"], (g["height"], g["width"])), decode_rle(w["mask_rle"], (w["height"], w["width"]))
            ious.append((a & b).sum() / max(1, (a | b).sum()))
    assert len(ious) >= 12 and np.median(ious) >= 0.5
