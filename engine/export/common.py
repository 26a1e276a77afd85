"""What every exporter shares: the result record and the per-row loop that never stops on one bad row."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.export.select import DEFAULT_WHERE, count_selected, export_names, iter_selected

log = logging.getLogger("sodforge.export")


@dataclass
class ExportResult:
    """One export: where it went, what was selected, how many rows made it and which did not (and why)."""

    format: str
    out: str
    run_id: str
    where: str
    selected: int = 0
    exported: int = 0
    reencoded: int = 0
    skipped: list[dict] = field(default_factory=list)

    def save(self) -> Path:
        """Write ``<out>/export.json`` (this record) and return its path."""
        path = Path(self.out) / "export.json"
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


@dataclass(frozen=True)
class SelectedRow:
    """One label row to export with its unique file stem in the export."""

    name: str
    row: dict


def selected_rows(workdir: str | Path, where: str, run_id: str | None, result: ExportResult) -> Iterator[SelectedRow]:
    """Rows matching ``where`` (with unique names); fills ``result.run_id`` and ``result.selected``."""
    run, count = count_selected(workdir, where, run_id)
    result.run_id, result.selected = run, count
    names = export_names(workdir, where, run)
    for row in iter_selected(workdir, where, run):
        yield SelectedRow(names[row["image_id"]], row)


def prepare_out(out: str | Path, overwrite: bool = False) -> Path:
    """Make ``out`` ready: created if absent; a non-empty folder is refused unless ``overwrite`` and it
    holds an earlier export (``export.json``), which is then removed whole."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"{out}: folder is not empty; choose another --out or pass --overwrite")
        if not (out / "export.json").is_file():
            raise ValueError(f"{out}: not empty and holds no earlier export (export.json); refusing to overwrite")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def export_rows(workdir: str | Path, out: str | Path, fmt: str, where: str | None, run_id: str | None,
                write: Callable[[SelectedRow, ExportResult], None]) -> ExportResult:
    """Call ``write`` for every selected row; a row that raises ``ValueError`` is skipped, logged and
    listed in ``result.skipped`` (rows with status ``error`` are always skipped: they have no mask)."""
    where = where or DEFAULT_WHERE
    result = ExportResult(fmt, str(Path(out).resolve()), run_id or "", where)
    for item in selected_rows(workdir, where, run_id, result):
        row = item.row
        try:
            if row["status"] == "error":
                raise ValueError(f"status error ({row.get('error')})")
            write(item, result)
        except (ValueError, OSError) as err:
            log.warning("export %s: skipped %s: %s", fmt, row["path"], err)
            result.skipped.append({"path": row["path"], "image_id": row["image_id"], "reason": str(err)})
            continue
        result.exported += 1
    if result.selected == 0:
        log.warning("export %s: the condition %r selects no label of run %s", fmt, where, result.run_id)
    return result
