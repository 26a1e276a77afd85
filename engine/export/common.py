"""What every exporter shares: the result record, the staged output folder, and the per-row loop
that never stops on one bad row (but always on a failed write).

An export is built in a hidden folder beside ``out`` (``.<name>.partial-<pid>``) and renamed to
``out`` only when complete, so a killed export never leaves half a folder at ``out`` and never
destroys an earlier export (``--overwrite`` swaps the earlier one out only at the very end).
Leftovers of a killed export are cleaned up (or an interrupted swap rolled back) by the next one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.export.select import DEFAULT_WHERE, count_run_labels, count_selected, export_names, iter_selected
from engine.storage import WriteError, names_path, write_text_atomic

log = logging.getLogger("sodforge.export")


@dataclass
class ExportResult:
    """One export: where it went, what was selected, how many rows made it and which did not (and why).

    ``total``: labels of the run; ``selected``: those matching ``where``; ``exported``: written;
    ``skipped``: selected but not written (unreadable image, status ``error``...), each with its reason.
    """

    format: str
    out: str
    run_id: str
    where: str
    selected: int = 0
    exported: int = 0
    reencoded: int = 0
    skipped: list[dict] = field(default_factory=list)
    total: int = 0

    @property
    def filtered_out(self) -> int:
        """Labels of the run that the ``where`` condition left out."""
        return self.total - self.selected

    def summary(self) -> str:
        """One line: ``exported 8 of 26 labels of run r (18 filtered out by --where "...", 0 unreadable) as duts to DIR``."""
        return (f"exported {self.exported} of {self.total} labels of run {self.run_id} ({self.filtered_out} filtered "
                f"out by --where \"{self.where}\", {len(self.skipped)} unreadable) as {self.format} to {self.out}")

    def save(self, folder: str | Path | None = None) -> Path:
        """Write ``export.json`` (this record) into ``folder`` (default: ``out``) and return its path."""
        record = {**asdict(self), "filtered_out": self.filtered_out}
        return write_text_atomic(json.dumps(record, indent=2) + "\n", Path(folder or self.out) / "export.json")


@dataclass(frozen=True)
class SelectedRow:
    """One label row to export with its unique file stem in the export."""

    name: str
    row: dict


def selected_rows(workdir: str | Path, where: str, run_id: str | None, result: ExportResult) -> Iterator[SelectedRow]:
    """Rows matching ``where`` (with unique names); fills ``result.run_id``, ``result.selected`` and ``result.total``."""
    run, count = count_selected(workdir, where, run_id)
    result.run_id, result.selected, result.total = run, count, count_run_labels(workdir, run)
    names = export_names(workdir, where, run)
    for row in iter_selected(workdir, where, run):
        yield SelectedRow(names[row["image_id"]], row)


def write_file(path: Path, data: bytes | str) -> None:
    """Write one export file; a failure (full disk) is a :class:`WriteError` naming it, which stops the export."""
    with names_path(path):
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse before any work: ``out`` is a file, or a non-empty folder that is not an earlier export
    (``export.json``) or is one but ``overwrite`` is off."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"{out}: folder is not empty; choose another --out or pass --overwrite")
        if not (out / "export.json").is_file():
            raise ValueError(f"{out}: not empty and holds no earlier export (export.json); refusing to overwrite")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover(out: Path) -> None:
    """Clean up after killed exports to ``out``: remove dead processes' partial folders; if a swap was
    interrupted (``out`` gone, the earlier export set aside), put the earlier export back."""
    prefix = f".{out.name}."
    for leftover in sorted(p for p in out.parent.iterdir() if p.name.startswith(prefix)):
        kind, _, pid = leftover.name.removeprefix(prefix).rpartition("-")
        if kind not in ("partial", "old") or not pid.isdigit() or _alive(int(pid)):
            continue
        if kind == "old" and not out.exists():
            log.warning("export: restoring the earlier export %s (a replacing export was killed mid-swap)", out)
            os.rename(leftover, out)
        else:
            log.info("export: removing %s, left by a killed export", leftover)
            shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def staged_export(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """A fresh hidden folder beside ``out`` to write the export into; when the block ends without an
    error it replaces ``out`` (an earlier export is removed only then), otherwise it is removed."""
    out = Path(out).absolute()
    if out.parent.is_dir():
        _recover(out)
    _check_out(out, overwrite)
    with names_path(out.parent):
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = out.parent / f".{out.name}.partial-{os.getpid()}"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
    try:
        yield stage
        with names_path(out):
            _check_out(out, overwrite)  # still true after the work (another export may have landed)
            aside = out.parent / f".{out.name}.old-{os.getpid()}"
            if out.exists():
                os.rename(out, aside)
            os.rename(stage, out)
            shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def export_rows(workdir: str | Path, out: str | Path, fmt: str, where: str | None, run_id: str | None,
                write: Callable[[SelectedRow, ExportResult], None]) -> ExportResult:
    """Call ``write`` for every selected row; a row that raises ``ValueError`` or a read ``OSError`` is
    skipped, logged and listed in ``result.skipped`` (rows with status ``error`` are always skipped:
    they have no mask). A :class:`WriteError` (full disk) stops the export."""
    where = where or DEFAULT_WHERE
    result = ExportResult(fmt, str(Path(out).absolute()), run_id or "", where)
    for item in selected_rows(workdir, where, run_id, result):
        row = item.row
        try:
            if row["status"] == "error":
                raise ValueError(f"status error ({row.get('error')})")
            write(item, result)
        except WriteError:
            raise
        except (ValueError, OSError) as err:
            log.warning("export %s: skipped %s: %s", fmt, row["path"], err)
            result.skipped.append({"path": row["path"], "image_id": row["image_id"], "reason": str(err)})
            continue
        result.exported += 1
    if result.selected == 0:
        log.warning("export %s: the condition %r selects no label of run %s", fmt, where, result.run_id)
    return result
