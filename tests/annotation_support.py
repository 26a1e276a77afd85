"""Test helpers for the annotation tests: a workdir with a hand-made labelling run.

The labels are built from the sample set's TRUE masks with chosen quality scores (a test fake,
never used by the engine), so review order and overlays are known exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine.catalog import RunRecord, Workdir, build_catalog
from engine.images.manifest import ingest, read_manifest
from engine.labeling.record import PseudoLabel, labels_to_table
from engine.masks import encode_rle
from engine.storage import write_table_atomic

RUN_ID = "run001"


def make_labelled_workdir(sample_dir: Path, workdir: Path, no_object: int = 1) -> tuple[Workdir, list[dict]]:
    """Ingest ``sample_dir`` into ``workdir`` and write one labelling run ``run001``.

    Image ``i`` (manifest order) gets quality ``0.95 - 0.05 * i``; the last ``no_object`` images get
    status ``no_object``. Returns the workdir and the manifest rows.
    """
    wd = Workdir.at(workdir)
    ingest(sample_dir, wd.manifest_dir, shard_size=64)
    rows = [row for _, shard in read_manifest(wd.manifest_dir) for row in shard]
    labels = []
    for i, row in enumerate(rows):
        stem = Path(row["path"]).stem
        mask = np.asarray(Image.open(sample_dir / "masks" / f"{stem}.png")) > 0
        common = dict(image_id=row["image_id"], path=row["path"], run_id=RUN_ID, shard="shard-00000",
                      height=row["height"], width=row["width"],
                      caption="a <b>photo</b> of object 0" if i == 0 else f"a photo of object {i}")
        if i >= len(rows) - no_object:
            labels.append(PseudoLabel(status="no_object", error="no box", phrase="", **common))
            continue
        ys, xs = np.nonzero(mask)
        labels.append(PseudoLabel(
            status="ok", mask_rle=encode_rle(mask), phrase=f"object {i}", category="object",
            boxes_xyxy=[[float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]], box_scores=[0.8],
            box_labels=["object"], box_count=1, quality_score=round(0.95 - 0.05 * i, 4), **common,
        ))
    write_table_atomic(labels_to_table(labels), wd.labels_dir(RUN_ID) / "shard-00000.parquet")
    RunRecord(RUN_ID, "build-pseudo-labels", {"captioner": "test"}, {}, state="completed", images=len(rows)).save(wd)
    build_catalog(wd)
    return wd, rows
