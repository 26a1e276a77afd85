"""A Hugging Face ``datasets``-loadable Parquet folder: ``out/data/train-NNNNN.parquet`` + ``README.md``.

Columns: ``image`` and ``mask`` (``datasets.Image``: ``{bytes, path}``; the mask is an 8-bit 0/255
PNG), ``image_id``, ``source_path``, ``caption``, ``phrase``, ``category``, ``status``, ``height``,
``width``, ``run_id`` and the quality columns. The schema carries the ``huggingface`` feature
metadata, so ``datasets.load_dataset("parquet", data_dir=out)`` (or ``load_dataset(out)``) decodes
``image`` / ``mask`` as PIL images. Files are written ``rows_per_file`` rows at a time, atomically.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from engine.catalog.views import QUALITY_COLUMNS
from engine.export.common import ExportResult, SelectedRow, export_rows, staged_export, write_file
from engine.export.media import image_payload, label_mask, mask_png
from engine.storage import write_table_atomic

TEXT_COLUMNS = ("image_id", "source_path", "caption", "phrase", "category", "status", "run_id")
INT_COLUMNS = ("height", "width", "box_count", "components")

CARD = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
---
# sodforge pseudo-labels

Exported by `sodforge export --format hf` from labelling run `{run_id}` with the filter `{where}`.
Columns: `image`, `mask` (0/255 PNG), `caption`, `phrase`, `category`, `status` and per-image quality
signals (`quality_score`, `sam_pred_iou`, ...). Load with
`datasets.load_dataset("parquet", data_dir="<this folder>/data")` or `datasets.load_dataset("<this folder>")`.
"""


def hf_features():
    """The ``datasets.Features`` of the exported table (``datasets`` is imported here, lazily)."""
    import datasets

    features = {"image": datasets.Image(), "mask": datasets.Image()}
    features.update({name: datasets.Value("string") for name in TEXT_COLUMNS})
    for name in QUALITY_COLUMNS:
        features[name] = datasets.Value("int32" if name in INT_COLUMNS else "float32")
    features.update({"height": datasets.Value("int32"), "width": datasets.Value("int32")})
    return datasets.Features(features)


def export_hf(workdir: str | Path, out: str | Path, where: str | None = None, run_id: str | None = None,
              overwrite: bool = False, rows_per_file: int = 1000) -> ExportResult:
    """Export the selected labels of ``workdir`` as Parquet files under ``out/data`` plus a dataset card."""
    if rows_per_file < 1:
        raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
    with staged_export(out, overwrite) as stage:
        result = _export_hf(workdir, stage, out, where, run_id, rows_per_file)
        result.save(stage)
    return result


def _export_hf(workdir: str | Path, stage: Path, out: str | Path, where: str | None, run_id: str | None,
               rows_per_file: int) -> ExportResult:
    schema = hf_features().arrow_schema
    buffer: list[dict] = []
    files: list[Path] = []

    def flush() -> None:
        if buffer:
            path = stage / "data" / f"train-{len(files):05d}.parquet"
            files.append(write_table_atomic(pa.Table.from_pylist(buffer, schema=schema), path))
            buffer.clear()

    def write(item: SelectedRow, result: ExportResult) -> None:
        row = item.row
        mask = label_mask(row)
        payload = image_payload(row["path"], mask.shape)
        result.reencoded += int(payload.reencoded)
        record = {name: row.get(name) for name in (*TEXT_COLUMNS, *QUALITY_COLUMNS, "height", "width")}
        record["source_path"] = row["path"]
        record["image"] = {"bytes": payload.data, "path": f"{item.name}{payload.extension}"}
        record["mask"] = {"bytes": mask_png(mask), "path": f"{item.name}.png"}
        buffer.append(record)
        if len(buffer) >= rows_per_file:
            flush()

    result = export_rows(workdir, out, "hf", where, run_id, write)
    flush()
    if not files:  # an empty but loadable dataset
        files.append(write_table_atomic(schema.empty_table(), stage / "data" / "train-00000.parquet"))
    write_file(stage / "README.md", CARD.format(run_id=result.run_id, where=result.where))
    return result
