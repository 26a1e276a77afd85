"""Flow ``transfer``: adapter-tune a trained detector on a target set (RGB-D, RGB-T, video, RSI...).

The detector is frozen; only a small adapter on its deepest decoder branch trains, on the target's
own pseudo-labels with SPR. Run with ``sodforge transfer DETECTOR TARGET --out DIR`` or as the
deployment ``transfer/default``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from prefect import flow

from flows.refine_labels import resolve_refine_params
from tasks.refine import adapter_tune_task


@flow(name="transfer", log_prints=True)
def transfer(
    target: str = "data/raw/sample",
    detector: str | None = None,
    workdir: str = "data",
    out_dir: str = "data/transfer",
    params_file: str | None = "params.yaml",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Adapter-tune ``detector`` on the images of ``target``; writes ``adapted.pt`` and ``transfer.json``.

    Args:
        target: a set folder (``images/`` plus optional ``depth/``, ``thermal/``, ``flow/``; ``masks/``
            only to report MAE before and after).
        detector: a ``detector.pt`` written by the ``refine-labels`` flow (default: the newest one
            under ``workdir/refine/``).
        workdir: where to look for that newest detector.
        out_dir: where the adapted checkpoint and the summary go.
        params_file: parameters file (``refine`` section: ``adapter``, ``spr``, ``par``, ``size``...).
        overrides: ``refine`` keys to override, e.g. ``{"adapter": {"epochs": 2}}``.
    """
    if detector is None:
        found = sorted(Path(workdir).glob("refine/refine-*/detector.pt"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise ValueError(f"{workdir}/refine: no detector.pt found; run refine-labels first or pass detector")
        detector = str(found[-1])
    if not Path(detector).is_file():
        raise ValueError(f"{detector}: detector checkpoint not found")
    if not Path(target).is_dir():
        raise ValueError(f"{target}: target folder not found")
    params = resolve_refine_params(params_file, overrides)
    return adapter_tune_task(str(Path(detector).resolve()), str(Path(target).resolve()), str(Path(out_dir).resolve()),
                             dataclasses.asdict(params))


def deployments(project: Path) -> list:
    """``transfer/default``: adapts the newest ``refine-labels`` detector of ``data/`` to the sample set."""
    return [
        transfer.to_deployment(
            name="default",
            parameters={"target": str(project / "data" / "raw" / "sample"), "workdir": str(project / "data"),
                        "out_dir": str(project / "data" / "transfer"), "params_file": str(project / "params.yaml")},
            tags=["sodforge"],
            description="Adapter-tune a trained saliency detector on a target set (only the adapter trains).",
        )
    ]


if __name__ == "__main__":
    print(transfer())
