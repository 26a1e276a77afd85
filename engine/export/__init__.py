"""Exports of a workdir's labels: DUTS-style folders, COCO RLE JSON, Hugging Face Parquet.

Every exporter takes the workdir (its ``catalog.duckdb`` is opened read-only), an output folder, a
SQL condition on the ``label_quality`` view (default ``status = 'ok'``) and a run id (default: the newest),
streams the matching rows and returns an :class:`ExportResult` (also saved as ``out/export.json``).
"""

from engine.export.coco import export_coco, read_coco_masks
from engine.export.common import ExportResult
from engine.export.duts import export_duts, read_duts_masks
from engine.export.hf import export_hf
from engine.export.select import DEFAULT_WHERE, count_selected

EXPORTERS = {"duts": export_duts, "coco": export_coco, "hf": export_hf}
"""Format name -> exporter ``(workdir, out, where=None, run_id=None, overwrite=False) -> ExportResult``."""

__all__ = [
    "DEFAULT_WHERE",
    "EXPORTERS",
    "ExportResult",
    "count_selected",
    "export_coco",
    "export_duts",
    "export_hf",
    "read_coco_masks",
    "read_duts_masks",
]
