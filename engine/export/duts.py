"""DUTS-style folders: ``Image/<stem>.jpg`` + ``Mask/<stem>.png`` (8-bit, 0 / 255), plus ``index.csv``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from engine.export.common import ExportResult, SelectedRow, export_rows, staged_export, write_file
from engine.export.media import image_payload, label_mask, mask_png, read_mask_png

INDEX_COLUMNS = ("name", "image_id", "source_path", "status", "category", "caption", "phrase", "quality_score")


def export_duts(workdir: str | Path, out: str | Path, where: str | None = None,
                run_id: str | None = None, overwrite: bool = False) -> ExportResult:
    """Export the selected labels of ``workdir`` as ``out/Image``, ``out/Mask`` and ``out/index.csv``.

    Images are JPEG (original bytes when possible, see :mod:`engine.export.media`); labels with
    status ``no_object`` get an all-black mask; status ``error`` rows are skipped and listed.
    """
    with staged_export(out, overwrite) as stage:
        (stage / "Image").mkdir()
        (stage / "Mask").mkdir()
        index_rows: list[dict] = []

        def write(item: SelectedRow, result: ExportResult) -> None:
            row = item.row
            mask = label_mask(row)
            payload = image_payload(row["path"], mask.shape, jpeg_only=True)
            write_file(stage / "Image" / f"{item.name}.jpg", payload.data)
            write_file(stage / "Mask" / f"{item.name}.png", mask_png(mask))
            result.reencoded += int(payload.reencoded)
            index_rows.append({"name": item.name, "source_path": row["path"],
                               **{k: row.get(k) for k in INDEX_COLUMNS if k not in ("name", "source_path")}})

        result = export_rows(workdir, out, "duts", where, run_id, write)
        table = io.StringIO()
        writer = csv.DictWriter(table, fieldnames=list(INDEX_COLUMNS))
        writer.writeheader()
        writer.writerows(index_rows)
        write_file(stage / "index.csv", table.getvalue())
        result.save(stage)
    return result


def read_duts_masks(folder: str | Path) -> dict[str, np.ndarray]:
    """``{stem: (H, W) bool}`` from ``folder/Mask/*.png`` (checks every mask has its ``Image/*.jpg``)."""
    folder = Path(folder)
    masks = {}
    for path in sorted((folder / "Mask").glob("*.png")):
        if not (folder / "Image" / f"{path.stem}.jpg").is_file():
            raise ValueError(f"{path}: no matching image {folder / 'Image' / (path.stem + '.jpg')}")
        masks[path.stem] = read_mask_png(path)
    return masks
