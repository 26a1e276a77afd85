"""What Parquet page checksums cost: write, footer-only check and full verification of label shards.

Label shards of ``--shard-size`` rows are built from true masks (COCO RLE, as labelling stores them):
from ``--data DIR`` (a DUTS-style folder, or any folder of mask PNGs) when given, else from generated
blobs. It times writing with and without page checksums, the footer-only fingerprint check (what
"is this shard current?" cost before), and the full read with checksum verification (what it costs
now), and counts how many single-byte flips each check notices. Last line: one JSON object.

    .venv/bin/python benchmarks/shard_checksums.py [--quick] [--data ../shared/realdata/DUTS-TR-3k]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from engine.labeling.record import PseudoLabel, labels_to_table
from engine.masks import encode_rle
from engine.storage import read_fingerprint, verify_table, write_table_atomic


def _masks(data: Path | None, count: int) -> list[np.ndarray]:
    if data is not None:
        files = sorted(p for p in data.rglob("*.png") if "mask" in str(p.parent).lower())[:count]
        if not files:
            raise SystemExit(f"{data}: no mask PNGs found (looked in folders whose name contains 'mask')")
        return [np.asarray(Image.open(p).convert("L")) > 128 for p in files]
    rng = np.random.default_rng(0)
    masks = []
    for _ in range(count):
        yy, xx = np.mgrid[:300, :400]
        cy, cx, r = rng.uniform(80, 220), rng.uniform(100, 300), rng.uniform(30, 120)
        masks.append((yy - cy) ** 2 + ((xx - cx) * rng.uniform(0.5, 1.5)) ** 2 < r**2)
    return masks


def _table(masks: list[np.ndarray], rows: int):
    labels = []
    for i in range(rows):
        mask = masks[i % len(masks)]
        labels.append(PseudoLabel(f"{i:032x}", f"/data/images/{i:06d}.jpg", "run", "shard-00000", "ok",
                                  height=mask.shape[0], width=mask.shape[1], caption=f"a photo of thing {i % 97}",
                                  phrase=f"thing {i % 97}", category=f"thing{i % 97}", boxes_xyxy=[[1, 2, 30, 40]],
                                  box_scores=[0.8], box_labels=["thing"], mask_rle=encode_rle(mask),
                                  best_box_score=0.8, box_count=1, sam_pred_iou=0.9, stability_score=0.95,
                                  mask_area_frac=float(mask.mean()), components=1, boundary_smoothness=0.9,
                                  quality_score=0.7))
    return labels_to_table(labels)


def _ms(fn, repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="DUTS-style folder whose masks give realistic RLE")
    parser.add_argument("--shard-size", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and flips")
    args = parser.parse_args()
    repeats, flips = (5, 50) if args.quick else (30, 300)
    table = _table(_masks(args.data, args.shard_size), args.shard_size)
    tmp = Path(tempfile.mkdtemp(prefix="shard-checksums-"))
    path = tmp / "shard.parquet"

    def write(target: Path, checksums: bool):
        pq.write_table(table, target, compression="zstd", write_page_checksum=checksums)

    write_table_atomic(table, path, "fp")  # the shard as labelling writes it (checksums, fingerprint)
    results = {
        "rows": args.shard_size,
        "masks_from": str(args.data) if args.data else "generated blobs",
        "write_plain_ms": _ms(lambda: write(tmp / "plain.parquet", False), repeats),
        "write_checksummed_ms": _ms(lambda: write(tmp / "sums.parquet", True), repeats),
        "footer_check_ms": _ms(lambda: read_fingerprint(path), repeats * 10),
        "full_verify_ms": _ms(lambda: verify_table(path), repeats),
        "shard_bytes": path.stat().st_size,
        "checksum_overhead_bytes": path.stat().st_size - (tmp / "plain.parquet").stat().st_size,
    }
    data, original = path.read_bytes(), pq.read_table(path)
    footer_start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    counts = {"caught_by_footer_check": 0, "caught_by_full_verify": 0, "wrong_data_without_checksums": 0,
              "wrong_data_after_verify": 0}
    damaged_path = tmp / "damaged.parquet"
    for index in range(flips):  # flip one byte somewhere in the column chunks (before the footer)
        damaged = bytearray(data)
        damaged[random.Random(index).randrange(4, footer_start)] ^= 0xFF
        damaged_path.write_bytes(bytes(damaged))
        footer_ok = read_fingerprint(damaged_path) == "fp"
        verified = footer_ok and verify_table(damaged_path) is None
        counts["caught_by_footer_check"] += not footer_ok
        counts["caught_by_full_verify"] += not verified
        try:  # what a reader without checksum verification gets
            wrong = not pq.read_table(damaged_path).equals(original)
        except Exception:  # noqa: BLE001 - an error is not silent
            wrong = False
        counts["wrong_data_without_checksums"] += wrong
        counts["wrong_data_after_verify"] += verified and wrong
    results.update({"flips": flips, **counts,
                    "no_op_rerun_s_per_510_shards": round(results["full_verify_ms"] * 510 / 1000, 2)})
    for key, value in results.items():
        print(f"{key:32s} {value:.2f}" if isinstance(value, float) else f"{key:32s} {value}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}))


if __name__ == "__main__":
    main()
