"""Scale: labelling throughput and peak RSS vs image count, Prefect overhead per shard, catalog
query times on a 300k-row synthetic catalog, and DVC add/status times for the shard layout.

    .venv/bin/python benchmarks/scale.py --quick        # 200/500/1000 images, 100k catalog rows
    .venv/bin/python benchmarks/scale.py                # 2k/10k/20k images, 300k catalog rows

Labelling runs with the tiny models on CPU, each size in a fresh process (so its peak RSS is its
own). The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = {
    "status_counts": "SELECT status, count(*) FROM label_quality GROUP BY 1",
    "top_categories": "SELECT category, count(*) n, avg(quality_score) q FROM label_quality GROUP BY 1 ORDER BY n DESC LIMIT 20",
    "worst_50_ok": "SELECT image_id, path, quality_score FROM label_quality WHERE status = 'ok' ORDER BY quality_score LIMIT 50",
    "thin_categories": "SELECT category, count(*) n FROM label_quality GROUP BY 1 HAVING n < 50 ORDER BY n",
    "quality_filter_count": "SELECT count(*) FROM label_quality WHERE quality_score >= 0.5 AND mask_area_frac BETWEEN 0.05 AND 0.8",
    "one_image": "SELECT * FROM label_quality WHERE image_id = 'img-0123456'",
}


def _label_child(images: str, workdir: str, shard_size: int, engine_only: bool) -> None:
    """Run in a child process: label ``images`` and print seconds and peak RSS as JSON."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    if engine_only:
        from engine.catalog import Workdir
        from engine.images.manifest import ingest
        from engine.labeling import Labeler, label_shard, labelling_run_id, load_label_models
        from engine.params import load_params

        params = load_params(None, {"ingest": {"shard_size": shard_size}})
        wd = Workdir.at(workdir)
        shards = ingest(images, wd.manifest_dir, shard_size).shard_paths
        models = load_label_models(params.models)
        run_id = labelling_run_id(models.identity, params.label)
        labeler = Labeler(models, params.label, run_id)
        for shard in shards:
            label_shard(shard, wd.labels_dir(run_id) / shard.name, labeler)
        count = len(shards)
    else:
        from flows.build_pseudo_labels import build_pseudo_labels

        count = build_pseudo_labels(images=images, workdir=workdir, shard_size=shard_size, params_file=None)["shards"]
    seconds = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": rss_mb, "shards": count}))


def _run_child(images: Path, workdir: Path, shard_size: int, engine_only: bool) -> dict:
    command = [sys.executable, __file__, "--child", str(images), str(workdir), str(shard_size)]
    if engine_only:
        command.append("--engine-only")
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"labelling child failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def labelling_scale(tmp: Path, sizes: list[int], shard_size: int) -> dict:
    from engine.datasets import generate_sample_set

    results = {}
    generate_sample_set(tmp / "set", count=max(sizes), size_hw=(96, 128), seed=0, with_depth=False)
    all_images = sorted((tmp / "set" / "images").iterdir())
    for size in sizes:
        subset = tmp / f"set-{size}" / "images"
        subset.mkdir(parents=True)
        for path in all_images[:size]:
            os.link(path, subset / path.name)
        figures = _run_child(subset.parent, tmp / f"wd-{size}", shard_size, engine_only=False)
        figures["img_s"] = size / figures["seconds"]
        results[size] = figures
        print(f"labelled {size} images: {figures['img_s']:.1f} img/s, peak RSS {figures['peak_rss_mb']:.0f} MB", flush=True)
    smallest = min(sizes)
    engine = _run_child(tmp / f"set-{smallest}", tmp / "wd-engine", shard_size, engine_only=True)
    flow = results[smallest]
    total = flow["seconds"] - engine["seconds"]
    overhead = total / max(flow["shards"], 1)
    print(f"Prefect overhead: {total:.1f} s in all, {overhead:.2f} s per shard incl. the temporary API server's start "
          f"(flow {flow['seconds']:.1f} s vs engine alone {engine['seconds']:.1f} s, {flow['shards']} shards)")
    return {"labelling": results, "prefect_overhead_s_total": total, "prefect_overhead_s_per_shard": overhead,
            "engine_only_s": engine["seconds"]}


def synthetic_catalog(root: Path, rows: int, shard_size: int = 512) -> float:
    """Write ``rows`` synthetic label rows as shards; returns seconds."""
    import pyarrow as pa

    from engine.labeling.record import LABEL_SCHEMA
    from engine.storage import write_table_atomic

    rng = np.random.default_rng(0)
    categories = [f"cat{i:03d}" for i in range(960)]
    started = time.perf_counter()
    for start in range(0, rows, shard_size):
        n = min(shard_size, rows - start)
        boxes = rng.uniform(0, 400, size=(n, 2, 4)).astype(np.float32)
        status = rng.choice(["ok", "ok", "ok", "ok", "no_object", "error"], size=n)
        table = pa.table({
            "image_id": [f"img-{start + i:07d}" for i in range(n)],
            "path": [f"/data/raw/big/images/{start + i:07d}.jpg" for i in range(n)],
            "run_id": ["synthetic"] * n,
            "shard": [f"shard-{start // shard_size:05d}"] * n,
            "status": status,
            "error": [None if s != "error" else "corrupt" for s in status],
            "height": np.full(n, 480, np.int32), "width": np.full(n, 640, np.int32),
            "caption": ["a photo of a thing"] * n, "phrase": ["thing"] * n,
            "category": rng.choice(categories, size=n, p=np.arange(960, 0, -1) / np.arange(960, 0, -1).sum()),
            "boxes_xyxy": [b.tolist() for b in boxes],
            "box_scores": [list(rng.uniform(0.3, 1, 2)) for _ in range(n)],
            "box_labels": [["thing", "thing"]] * n,
            "mask_rle": ["a1b2c3d4e5f6g7"] * n,
            "best_box_score": rng.uniform(0.3, 1, n).astype(np.float32),
            "box_count": np.full(n, 2, np.int32),
            "sam_pred_iou": rng.uniform(0.5, 1, n).astype(np.float32),
            "stability_score": rng.uniform(0.5, 1, n).astype(np.float32),
            "mask_area_frac": rng.uniform(0, 1, n).astype(np.float32),
            "components": rng.integers(1, 5, n).astype(np.int32),
            "boundary_smoothness": rng.uniform(0.5, 1, n).astype(np.float32),
            "shape_score": rng.uniform(0, 1, n).astype(np.float32),
            "quality_score": rng.uniform(0, 1, n).astype(np.float32),
        }).cast(LABEL_SCHEMA)
        write_table_atomic(table, root / "catalog" / "labels" / "run=synthetic" / f"shard-{start // shard_size:05d}.parquet")
    return time.perf_counter() - started


def catalog_queries(tmp: Path, rows: int) -> dict:
    import duckdb

    from engine.catalog import RunRecord, Workdir, build_catalog

    write_s = synthetic_catalog(tmp / "big", rows)
    RunRecord("synthetic", "build-pseudo-labels", {}, {}, state="completed").save(Workdir.at(tmp / "big"))
    started = time.perf_counter()
    build_catalog(tmp / "big")  # first build compacts the finished run into one file
    build_s = time.perf_counter() - started
    timings = {}
    with duckdb.connect(str(tmp / "big" / "catalog.duckdb"), read_only=True) as con:
        for name, sql in QUERIES.items():
            con.execute(sql).fetchall()  # warm the file cache
            samples = []
            for _ in range(5):
                started = time.perf_counter()
                con.execute(sql).fetchall()
                samples.append((time.perf_counter() - started) * 1000)
            timings[name] = float(np.median(samples))
            print(f"query {name}: {timings[name]:.1f} ms (median of 5, {rows} rows)")
    size_mb = sum(p.stat().st_size for p in (tmp / "big" / "catalog" / "labels").rglob("*.parquet")) / 1e6
    return {"catalog_rows": rows, "catalog_write_s": write_s, "catalog_build_s": build_s,
            "catalog_parquet_mb": size_mb, "query_ms": timings}


def dvc_times(tmp: Path) -> dict:
    repo = tmp / "big"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=repo, check=True, env=env)
    timings = {}
    for name, args in (("dvc_add_s", ["add", "-q", "catalog/labels"]), ("dvc_status_s", ["status", "-q"])):
        started = time.perf_counter()
        subprocess.run([dvc, *args], cwd=repo, check=False, env=env, capture_output=True)
        timings[name] = time.perf_counter() - started
    timings["dvc_files"] = len(list((repo / "catalog" / "labels").rglob("*.parquet")))
    print(f"dvc add {timings['dvc_add_s']:.1f} s, status {timings['dvc_status_s']:.1f} s for {timings['dvc_files']} shard files")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU-sized: a few minutes")
    parser.add_argument("--sizes", type=int, nargs="*", help="image counts to label")
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--catalog-rows", type=int)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--engine-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _label_child(args.child[0], args.child[1], int(args.child[2]), args.engine_only)
        return
    sizes = args.sizes or ([200, 500, 1000] if args.quick else [2000, 10000, 20000])
    rows = args.catalog_rows or (100_000 if args.quick else 300_000)
    tmp = Path(tempfile.mkdtemp(prefix="sodforge-scale-"))
    os.environ.setdefault("SODFORGE_CACHE", str(tmp / "cache"))
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))
    try:
        figures = {"sizes": sizes, "shard_size": args.shard_size}
        figures.update(labelling_scale(tmp, sizes, args.shard_size))
        figures.update(catalog_queries(tmp, rows))
        figures.update(dvc_times(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    labelling = figures.pop("labelling")
    figures["img_s"] = {str(k): round(v["img_s"], 2) for k, v in labelling.items()}
    figures["peak_rss_mb"] = {str(k): round(v["peak_rss_mb"], 1) for k, v in labelling.items()}
    figures["max_query_ms"] = max(figures["query_ms"].values())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
