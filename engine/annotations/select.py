"""Which images people annotate: a fraction or count, spread over the set, never the same one twice.

Strategies:
- ``spread`` (first rounds): cheap image embeddings (a coarse RGB histogram plus a 4x4 colour
  layout, from a 32x32 thumbnail) clustered with k-means into as many clusters as images wanted;
  the image nearest each centre is taken, so the subset covers the look of the whole set.
- ``worst_quality`` (later rounds): images of a labelling run whose pseudo-labels look worst
  (``no_object`` first, then lowest ``quality_score``).

Each round is one Parquet file ``<workdir>/catalog/annotation_rounds/round-NNNN.parquet``; images
in earlier rounds, or already annotated, are never picked again.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from engine.annotations.imageset import ImageSet
from engine.annotations.records import utc_now
from engine.annotations.review import ReviewIndex, list_runs
from engine.catalog import Workdir
from engine.storage import write_table_atomic

ROUND_SCHEMA = pa.schema(
    [
        ("round", pa.int32()),
        ("rank", pa.int32()),
        ("image_id", pa.string()),
        ("path", pa.string()),
        ("strategy", pa.string()),
        ("cluster", pa.int32()),
        ("score", pa.float64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class SelectParams:
    """``count`` (if set) or ``fraction`` of the whole set per round; see the module doc for strategies."""

    fraction: float = 0.15
    count: int | None = None
    strategy: Literal["spread", "worst_quality"] = "spread"
    seed: int = 0
    max_candidates: int = 20000  # spread: cluster a random subsample of at most this many images
    run_id: str | None = None  # worst_quality: which labelling run (default: the newest)

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"annotate params: fraction must be in (0, 1], got {self.fraction}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"annotate params: count must be >= 1, got {self.count}")
        if self.strategy not in ("spread", "worst_quality"):
            raise ValueError(f"annotate params: strategy must be 'spread' or 'worst_quality', got {self.strategy!r}")
        if self.max_candidates < 1:
            raise ValueError(f"annotate params: max_candidates must be >= 1, got {self.max_candidates}")


def rounds_dir(workdir: Workdir) -> Path:
    return workdir.data / "annotation_rounds"


def read_rounds(workdir: Workdir) -> list[dict]:
    """Every selected image of every round, in (round, rank) order."""
    folder = rounds_dir(workdir)
    files = sorted(folder.glob("round-*.parquet")) if folder.is_dir() else []
    rows = [row for path in files for row in pq.read_table(path).to_pylist()]
    return sorted(rows, key=lambda r: (r["round"], r["rank"]))


def image_features(path: str | Path, bins: int = 4) -> np.ndarray | None:
    """``(bins**3 + 48,) float32`` embedding: RGB histogram (sums to 1) and 4x4 mean colours in [0, 1].

    ``None`` when the file cannot be decoded (it is then never selected by ``spread``).
    """
    try:
        with Image.open(path) as image:
            image.draft("RGB", (64, 64))  # JPEG: decode at reduced size, much faster
            thumb = np.asarray(image.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR), np.float32)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    quantised = np.minimum((thumb / 256.0 * bins).astype(np.int64), bins - 1)
    index = (quantised[..., 0] * bins + quantised[..., 1]) * bins + quantised[..., 2]
    histogram = np.bincount(index.ravel(), minlength=bins**3).astype(np.float32) / index.size
    layout = thumb.reshape(4, 8, 4, 8, 3).mean(axis=(1, 3)).ravel() / 255.0
    return np.concatenate([histogram, 0.25 * layout]).astype(np.float32)


def spread_pick(features: np.ndarray, k: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """Pick ``k`` rows of ``features`` ``(N, D)`` spread over the data: k-means, then the row nearest each centre.

    Returns ``(indices, clusters)``; clusters left empty by k-means are filled by farthest-point picks.
    """
    from scipy.cluster.vq import kmeans2

    n = len(features)
    if k >= n:
        return list(range(n)), list(range(n))
    centres, assignment = kmeans2(features.astype(np.float64), k, seed=seed, minit="++", iter=20)
    picked: list[int] = []
    clusters: list[int] = []
    for cluster in range(k):
        members = np.flatnonzero(assignment == cluster)
        if len(members):
            distances = np.linalg.norm(features[members] - centres[cluster], axis=1)
            picked.append(int(members[np.argmin(distances)]))
            clusters.append(cluster)
    while len(picked) < k:  # farthest point from everything picked so far
        distances = np.min(np.linalg.norm(features[:, None, :] - features[picked][None, :, :], axis=2), axis=1)
        picked.append(int(np.argmax(distances)))
        clusters.append(-1)
    return picked, clusters


def _wanted(params: SelectParams, total: int) -> int:
    return params.count if params.count is not None else max(1, math.ceil(params.fraction * total))


def _spread(candidates: list, k: int, params: SelectParams) -> list[tuple[object, int, float]]:
    rng = np.random.default_rng(params.seed)
    if len(candidates) > params.max_candidates:
        keep = np.sort(rng.choice(len(candidates), params.max_candidates, replace=False))
        candidates = [candidates[i] for i in keep]
    with ThreadPoolExecutor(max_workers=4) as pool:
        features = list(pool.map(lambda e: image_features(e.path), candidates))
    usable = [i for i, f in enumerate(features) if f is not None]
    if not usable:
        return []
    matrix = np.stack([features[i] for i in usable])
    indices, clusters = spread_pick(matrix, min(k, len(usable)), params.seed)
    return [(candidates[usable[i]], c, 0.0) for i, c in zip(indices, clusters, strict=True)]


def _worst(workdir: Workdir, image_set: ImageSet, candidates: set[str], k: int, run_id: str | None):
    if run_id is None:
        runs = list_runs(workdir)
        if not runs:
            raise ValueError(f"{workdir.root}: no labelling run to rank by quality; label the images first")
        run_id = runs[0]["run_id"]
    rows = ReviewIndex(workdir).rows(run_id)
    chosen = [r for r in rows if r["image_id"] in candidates][:k]
    return [(image_set.get(r["image_id"]), -1, r["quality_score"] if r["quality_score"] is not None else -1.0) for r in chosen]


def select_round(workdir: str | Path | Workdir, image_set: ImageSet, params: SelectParams,
                 exclude: set[str] | None = None) -> tuple[Path | None, list[dict]]:
    """Select the next round's images and write the round file; returns ``(path, rows)``.

    ``exclude``: ids never to pick (e.g. already annotated). Images of earlier rounds are always
    excluded. Returns ``(None, [])`` when no candidate is left.
    """
    workdir = workdir if isinstance(workdir, Workdir) else Workdir.at(workdir)
    previous = read_rounds(workdir)
    taken = {r["image_id"] for r in previous} | set(exclude or ())
    candidates = [e for e in image_set.entries if e.image_id not in taken]
    k = min(_wanted(params, len(image_set)), len(candidates))
    if k == 0:
        return None, []
    if params.strategy == "spread":
        picked = _spread(candidates, k, params)
    else:
        picked = _worst(workdir, image_set, {e.image_id for e in candidates}, k, params.run_id)
    number = max((r["round"] for r in previous), default=0) + 1
    now = utc_now()
    rows = [
        {"round": number, "rank": rank, "image_id": entry.image_id, "path": str(entry.path),
         "strategy": params.strategy, "cluster": cluster, "score": float(score), "created_at": now}
        for rank, (entry, cluster, score) in enumerate(picked)
    ]
    if not rows:
        return None, []
    path = write_table_atomic(pa.Table.from_pylist(rows, schema=ROUND_SCHEMA), rounds_dir(workdir) / f"round-{number:04d}.parquet")
    return path, rows
