"""COCO instance JSON with RLE masks: ``out/annotations.json`` + ``out/images/``.

One annotation per exported image: the merged salient-object mask as a compressed COCO RLE
(``segmentation = {"size": [h, w], "counts": str}``, ``iscrowd = 0``), its ``bbox`` ``[x, y, w, h]``
and ``area`` from pycocotools; ``category_id`` from the label's ``category`` (``object`` when it has
none). Labels with status ``no_object`` become images without annotations. Extra keys (caption,
phrase, quality) ride along on images and annotations; COCO readers ignore them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pycocotools import mask as coco_mask

from engine.export.common import ExportResult, SelectedRow, export_rows, staged_export, write_file
from engine.export.media import image_payload, label_mask
from engine.masks import rle_area

FALLBACK_CATEGORY = "object"
QUALITY_KEYS = ("quality_score", "best_box_score", "sam_pred_iou", "stability_score", "mask_area_frac")


def _annotation(row: dict, ann_id: int, image_id: int, category_id: int) -> dict:
    size_hw = (int(row["height"]), int(row["width"]))
    rle = {"size": list(size_hw), "counts": row["mask_rle"].encode("ascii")}
    bbox = [float(v) for v in coco_mask.toBbox(rle)]
    return {
        "id": ann_id, "image_id": image_id, "category_id": category_id,
        "segmentation": {"size": list(size_hw), "counts": row["mask_rle"]},
        "area": rle_area(row["mask_rle"], size_hw), "bbox": bbox, "iscrowd": 0,
        "score": None if row.get("quality_score") is None else float(row["quality_score"]),
        "phrase": row.get("phrase"),
        **{k: (None if row.get(k) is None else float(row[k])) for k in QUALITY_KEYS if k != "quality_score"},
    }


def export_coco(workdir: str | Path, out: str | Path, where: str | None = None, run_id: str | None = None,
                overwrite: bool = False) -> ExportResult:
    """Export the selected labels of ``workdir`` as ``out/annotations.json`` and ``out/images/``."""
    with staged_export(out, overwrite) as stage:
        result = _export_coco(workdir, stage, out, where, run_id)
        result.save(stage)
    return result


def _export_coco(workdir: str | Path, stage: Path, out: str | Path, where: str | None, run_id: str | None) -> ExportResult:
    (stage / "images").mkdir()
    images: list[dict] = []
    annotations: list[dict] = []
    categories: dict[str, int] = {}

    def write(item: SelectedRow, result: ExportResult) -> None:
        row = item.row
        mask = label_mask(row)  # validates size; decoding also checks the RLE
        payload = image_payload(row["path"], mask.shape)
        file_name = f"{item.name}{payload.extension}"
        write_file(stage / "images" / file_name, payload.data)
        result.reencoded += int(payload.reencoded)
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": file_name, "height": mask.shape[0], "width": mask.shape[1],
                       "source_path": row["path"], "sodforge_image_id": row["image_id"], "status": row["status"],
                       "caption": row.get("caption"), "phrase": row.get("phrase")})
        if row["status"] == "ok" and row.get("mask_rle") and mask.any():
            category = row.get("category") or FALLBACK_CATEGORY
            category_id = categories.setdefault(category, len(categories) + 1)
            annotations.append(_annotation(row, len(annotations) + 1, image_id, category_id))

    result = export_rows(workdir, out, "coco", where, run_id, write)
    document = {
        "info": {"description": f"sodforge export of labelling run {result.run_id} ({result.where})",
                 "version": "1.0", "date_created": datetime.now(UTC).isoformat(timespec="seconds")},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name, "supercategory": "salient"} for name, i in categories.items()],
    }
    write_file(stage / "annotations.json", json.dumps(document))
    return result


def read_coco_masks(annotations_json: str | Path) -> dict[str, np.ndarray]:
    """``{file_name: (H, W) bool}`` through pycocotools' own reader (``COCO.annToMask``); images
    without annotations map to an empty mask."""
    from pycocotools.coco import COCO

    coco = COCO(str(annotations_json))
    masks = {}
    for image in coco.loadImgs(coco.getImgIds()):
        mask = np.zeros((image["height"], image["width"]), bool)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            mask |= coco.annToMask(ann).astype(bool)
        masks[image["file_name"]] = mask
    return masks
