"""``sodforge dvc metrics`` / ``sodforge dvc table``: small, numbers-only files for DVC.

The stages write full reports (paths, timings, per-image details) for people. DVC compares
experiments best on a few numbers that are the same on every machine: these commands pick them out
of a report into ``metrics/*.json`` (tracked by git, so ``dvc exp show`` and ``dvc metrics diff``
see them in every commit and experiment) and plot tables (CSV, in DVC's cache).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from engine.storage import write_text_atomic
from sodforge.output import fail

dvc_app = typer.Typer(help="Numbers-only metrics and plot tables for DVC (used by dvc.yaml).", no_args_is_help=True)


def flatten(data: Any, prefix: str = "") -> dict[str, float | int]:
    """Numeric leaves of nested dicts as ``{"a.b": number}`` (strings, lists, booleans dropped)."""
    flat: dict[str, float | int] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(data, (int, float)) and not isinstance(data, bool) and math.isfinite(data):
        flat[prefix[:-1]] = data
    return flat


def pick(data: dict, specs: list[str], digits: int = 4) -> dict[str, float | int]:
    """Pick numbers from nested ``data`` by key specs ``SUFFIX[=NAME]``.

    ``SUFFIX`` matches the flattened key that equals it or ends with ``.SUFFIX`` (``MAE`` matches
    ``sample.MAE``); it must match exactly one number. Floats are rounded to ``digits``.

    >>> pick({"sample": {"MAE": 0.123456, "n": 3}, "after": {"f1": 0.5}}, ["MAE", "after.f1=f1_after"])
    {'MAE': 0.1235, 'f1_after': 0.5}
    """
    flat = flatten(data)
    out: dict[str, float | int] = {}
    for spec in specs:
        suffix, _, name = spec.partition("=")
        matches = [k for k in flat if k == suffix or k.endswith("." + suffix)]
        if len(matches) != 1:
            found = "none" if not matches else ", ".join(matches)
            raise ValueError(f"key {suffix!r} must match exactly one number; matches: {found}; numbers: {sorted(flat)}")
        value = flat[matches[0]]
        out[name or suffix] = round(value, digits) if isinstance(value, float) else value
    return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read JSON ({err})") from err


@dvc_app.command("metrics")
def metrics_cmd(
    source: Annotated[Path, typer.Argument(help="A JSON report (nested objects).")],
    out: Annotated[Path, typer.Argument(help="Metrics file to write: a flat JSON object of numbers.")],
    key: Annotated[list[str], typer.Option("--key", "-k", help="SUFFIX[=NAME] of a number to keep (repeat).")],
    digits: Annotated[int, typer.Option(help="Round floats to this many digits.")] = 4,
) -> None:
    """Write the chosen numbers of SOURCE as a flat JSON object (what `dvc metrics` should show)."""
    try:
        data = _read_json(source)
    except ValueError as err:  # names the file
        fail(err)
    try:
        chosen = pick(data, key, digits)
    except ValueError as err:
        fail(f"{source}: {err}")
    write_text_atomic(json.dumps(chosen, indent=1) + "\n", out)


@dvc_app.command("table")
def table_cmd(
    source: Annotated[Path, typer.Argument(help="A JSON list of records (e.g. a training history).")],
    out: Annotated[Path, typer.Argument(help="CSV to write (a DVC plot).")],
    column: Annotated[list[str], typer.Option("--column", "-c", help="Record key to keep (repeat), e.g. epoch.")],
    digits: Annotated[int, typer.Option(help="Round floats to this many digits.")] = 5,
    png: Annotated[Path | None, typer.Option(help="Also draw the columns against the first one as a PNG "
                                                  "(viewable offline, unlike DVC's vega charts).")] = None,
) -> None:
    """Write the chosen numeric columns of a list of records as CSV (timings and text left out)."""
    try:
        records = _read_json(source)
    except ValueError as err:
        fail(err)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        fail(f"{source}: expected a JSON list of objects")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(column)
    for number, record in enumerate(records, start=1):
        missing = [c for c in column if c not in record]
        if missing:
            fail(f"{source}: record {number} lacks {missing}")
        writer.writerow([round(record[c], digits) if isinstance(record[c], float) else record[c] for c in column])
    write_text_atomic(buffer.getvalue(), out)
    if png is not None:
        line_chart([[r[c] for c in column] for r in records], column, png)


def line_chart(rows: list[list[float]], columns: list[str], out: Path) -> Path:
    """Columns 2.. of ``rows`` against column 1, one line each, as a small PNG (same bytes every run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 3.2), dpi=100)
    for index, name in enumerate(columns[1:], start=1):
        axis.plot([r[0] for r in rows], [r[index] for r in rows], label=name)
    axis.set_xlabel(columns[0])
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png", metadata={"Software": None})
    plt.close(figure)
    return out


def register(app: typer.Typer) -> None:
    app.add_typer(dvc_app, name="dvc")
