"""Do the mask-shape terms of ``quality_score`` mean something on photos? Measured on true masks.

1. Read the true masks of a DUTS-style folder (``--data DIR`` holding ``*-Mask/`` beside ``*-Image/``,
   or ``masks/`` / ``gt/``), binarised at > 128 as PySODMetrics does. They are perfect labels.
2. Give each one the boxes a grounder would: one per part of the true mask (parts over 10% of the
   largest), each side moved by a normal error of 3% of the box size (seeded). True and corrupted
   copies of a mask are scored against the same boxes.
3. Make one corrupted copy per kind of ``engine.refine.corruptions.KINDS`` (box / shifted_box =
   a box-shaped mask, missing_part = a side of the object cut away, extra_region / false_blobs =
   an extra region, dilate / erode = loose / tight outline, holes).
4. Score every mask with ``engine.labeling.quality.shape_terms``; report the median of each term
   and of the shape score on the true masks, and the AUROC of "true mask scores higher than a
   corrupted one" (ties count half), over all corruptions and per kind. The same figures for the
   shape terms before this change (area, 1/sqrt(components), opening-closing smoothness) come along,
   and the time ``shape_terms`` takes per mask.

Run: ``.venv/bin/python benchmarks/quality_signals.py --data ../shared/realdata/DUTS-TE-1k [--quick]``;
the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import rankdata

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.labeling.quality import area_term, shape_terms  # noqa: E402
from engine.masks import connected_components  # noqa: E402
from engine.refine.corruptions import KINDS, corrupt_mask  # noqa: E402

MASK_DIRS = ("masks", "mask", "Mask", "gt", "GT")


def mask_files(data: Path) -> list[Path]:
    """The mask PNGs of a DUTS-style (``*-Mask/``) or ``masks/``/``gt/`` folder, or of ``data`` itself."""
    if not data.is_dir():
        raise SystemExit(f"--data {data}: not a folder")
    candidates = sorted(data.glob("*-Mask")) + [data / name for name in MASK_DIRS] + [data]
    for folder in candidates:
        files = sorted(folder.glob("*.png")) if folder.is_dir() else []
        if files:
            return files
    raise SystemExit(f"--data {data}: no mask PNGs in *-Mask/, {'/, '.join(MASK_DIRS)}/ or the folder itself")


def grounder_boxes(mask: np.ndarray, rng: np.random.Generator, jitter: float = 0.03) -> np.ndarray:
    """``(N, 4)`` xyxy boxes around the mask's main parts, each side off by N(0, jitter * size)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if not len(areas):
        return np.zeros((0, 4))
    boxes = []
    for index in np.flatnonzero(areas >= 0.1 * areas.max()) + 1:
        x, y, w, h = stats[index, :4]
        box = np.array([x, y, x + w, y + h], float) + rng.normal(0.0, jitter, 4) * np.array([w, h, w, h])
        boxes.append(np.clip(box, 0, [mask.shape[1], mask.shape[0]] * 2))
    return np.array(boxes)


def old_shape_terms(mask: np.ndarray) -> list[float]:
    """The shape terms as they were: area, 1/sqrt(components), opening-closing perimeter ratio."""
    mask_u8 = mask.astype(np.uint8)

    def perimeter(m: np.ndarray) -> float:
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        return float(sum(cv2.arcLength(c, True) for c in contours))

    raw = perimeter(mask_u8)
    side = max(3, int(round(min(mask.shape) * 0.02)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    smooth = cv2.morphologyEx(cv2.morphologyEx(mask_u8, cv2.MORPH_OPEN, kernel), cv2.MORPH_CLOSE, kernel)
    components = connected_components(mask)
    return [area_term(float(mask.mean())), 1 / math.sqrt(components) if components else 0.0,
            min(1.0, perimeter(smooth) / raw) if raw else 0.0]


def geometric_mean(values: list[float]) -> float:
    return 0.0 if min(values) <= 0 else float(math.exp(sum(math.log(v) for v in values) / len(values)))


def auroc(positive: list[float], negative: list[float]) -> float:
    """P(a positive scores higher than a negative), ties counted half (Mann-Whitney U / n1 n2)."""
    ranks = rankdata(np.concatenate([positive, negative]))
    n1, n2 = len(positive), len(negative)
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n2))


def score_all(files: list[Path], seed: int) -> tuple[dict[str, list], float]:
    rng = np.random.default_rng(seed)
    kinds = list(KINDS)
    rows: dict[str, list] = {kind: [] for kind in ["true", *kinds]}
    seconds = 0.0
    for path in files:
        truth = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if truth is None:
            print(f"skipped {path}: not a readable image", file=sys.stderr)
            continue
        truth = truth > 128
        if not truth.any():
            continue
        boxes = grounder_boxes(truth, rng)
        copies = {"true": truth}
        for kind in kinds:
            copies[kind] = corrupt_mask(truth, rng, kind=kind)[0]
        for kind, mask in copies.items():
            started = time.perf_counter()
            terms = shape_terms(mask, boxes)
            seconds += time.perf_counter() - started
            rows[kind].append({**vars(terms), "shape_score": terms.score, "old_shape_score": geometric_mean(old_shape_terms(mask))})
    return rows, seconds / max(1, sum(len(v) for v in rows.values()))


def summarise(rows: dict[str, list]) -> dict:
    true = rows["true"]
    kinds = [k for k in rows if k != "true"]
    out: dict = {"masks": len(true)}
    out["true_median"] = {name: round(float(np.median([r[name] for r in true])), 4) for name in true[0]}
    out["true_p10"] = {name: round(float(np.quantile([r[name] for r in true], 0.1)), 4) for name in true[0]}
    for key, label in (("shape_score", "auroc"), ("old_shape_score", "old_auroc")):
        positive = [r[key] for r in true]
        out[label] = round(auroc(positive, [r[key] for k in kinds for r in rows[k]]), 4)
        out[f"{label}_per_kind"] = {k: round(auroc(positive, [r[key] for r in rows[k]]), 4) for k in kinds}
    out["corrupted_median_shape_score"] = {k: round(float(np.median([r["shape_score"] for r in rows[k]])), 4) for k in kinds}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="DUTS-style folder (*-Image/ + *-Mask/) or a mask folder")
    parser.add_argument("--quick", action="store_true", help="the first 150 masks (about a minute on one core)")
    parser.add_argument("--limit", type=int, default=None, help="use at most this many masks")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = mask_files(args.data)
    limit = 150 if args.quick and args.limit is None else args.limit
    files = files[:limit] if limit else files
    rows, seconds_per_mask = score_all(files, args.seed)  # time inside shape_terms only
    if not rows["true"]:
        raise SystemExit(f"--data {args.data}: no non-empty masks")
    result = summarise(rows)
    result["shape_terms_ms_per_mask"] = round(1000 * seconds_per_mask, 2)
    result["data"] = str(args.data)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
