"""Flow ``data-engine``: the whole chain as subflows.

build-pseudo-labels -> refine-labels -> train-sod -> evaluate. Labelling, refinement and training
tasks carry the ``gpu`` tag, so a tag concurrency limit (``prefect concurrency-limit create gpu N``)
keeps one model replica per GPU when several workers share a machine.

The model trains on the refined labels only when the refinement run showed they are not worse than
the pseudo-labels (its held-out check passed, ``labels_verified``); otherwise on the pseudo-labels.
The summary (``trained_on_version``, ``trained_on_reason``), the log and the ``data-engine`` artifact
say which labels were used and why.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from engine.catalog import Workdir
from engine.params import check_params_file
from flows.build_pseudo_labels import build_pseudo_labels
from flows.evaluate import evaluate
from flows.refine_labels import refine_labels
from flows.train_sod import train_sod_flow


def _truth_masks(images: str, truth_masks: str | None) -> Path | None:
    if truth_masks:
        if not Path(truth_masks).is_dir():
            raise ValueError(f"{truth_masks}: truth mask folder not found")
        return Path(truth_masks)
    beside = Path(images) / "masks"
    return beside if beside.is_dir() else None


@flow(name="data-engine", log_prints=True)
def data_engine(
    images: str = "data/raw/sample",
    workdir: str = "data",
    models: str = "tiny",
    params_file: str | None = "params.yaml",
    refine: bool = True,
    train_on: Literal["refined", "pseudo", "truth"] = "refined",
    truth_masks: str | None = None,
) -> dict[str, Any]:
    """Label ``images``, refine the labels, train a DEDecoder on them and evaluate it.

    Args:
        images: image set (a folder, or a set folder with ``images/``, ``depth/``, ``masks/``...).
        workdir: where shards, catalog, models and reports go.
        models: labelling model profile (``tiny`` needs no download; masks are then meaningless).
        params_file: the single parameters file (sections ``label``, ``refine``, ``train``, ``evaluate``).
        refine: run ``refine-labels`` after labelling.
        train_on: label version to train on (``truth`` imports ``masks/`` beside the images); ``refined``
            falls back to the pseudo-labels unless the refinement run verified its labels.
        truth_masks: true masks for scoring (default: ``images/masks`` when present). With them, the
            pseudo-labels, the refined labels and the model are all scored against the truth.
    """
    logger = get_run_logger()
    if params_file and Path(params_file).is_file():
        check_params_file(params_file)  # a typo in any section fails now, not after hours of labelling
    wd = Workdir.at(workdir)
    truth = _truth_masks(images, truth_masks)
    labelled = build_pseudo_labels(images=images, workdir=workdir, models=models, params_file=params_file)
    refined = refine_labels(workdir=workdir, source_run=labelled["run_id"], params_file=params_file) if refine else None

    import_from = None
    if train_on == "truth":
        if truth is None:
            raise ValueError("train_on='truth' needs true masks (images/masks or truth_masks)")
        labels_dir, import_from = str(wd.root / "gt-labels"), images
        version, why = "truth", "train_on='truth': the true masks beside the images"
    else:
        version, why = training_labels(train_on, refined)
        labels_dir = refined["labels_dir"] if version == "refined" else str(wd.labels_dir(labelled["run_id"]))
    logger.info("data-engine trains on the %s labels in %s: %s", version, labels_dir, why)
    predictions = wd.root / "predictions" / "data-engine"
    trained = train_sod_flow(
        labels=labels_dir, out_dir=str(wd.root / "models" / "sod"), import_masks_from=import_from,
        predict_dir=str(predictions / "pred"), masks_dir=str(predictions / "labels"),
        params_file=params_file, progress=False,
    )

    reports = wd.root / "reports" / "data-engine"
    scored: dict[str, Any] = {}
    if truth is not None:
        heldout_truth = _heldout_truth(predictions / "pred", truth, predictions / "truth")
        scored["model_vs_truth"] = evaluate(pred=str(predictions / "pred"), gt=str(heldout_truth), missing="skip",
                                            out=str(reports / "model"), method="dedecoder", dataset="heldout",
                                            params_file=params_file)
        scored["labels_vs_truth"] = evaluate(workdir=workdir, run_id=labelled["run_id"], gt=str(truth),
                                             out=str(reports / "pseudo_labels"), params_file=params_file)
        if refined is not None:
            scored["refined_vs_truth"] = evaluate(workdir=workdir, run_id=refined["run_id"], gt=str(truth),
                                                  out=str(reports / "refined_labels"), params_file=params_file)
    else:  # no truth: how well the model reproduces its own (held-out) training labels
        scored["model_vs_labels"] = evaluate(pred=str(predictions / "pred"), gt=str(predictions / "labels"),
                                             out=str(reports / "model"), method="dedecoder", dataset="heldout",
                                             params_file=params_file)
    summary = {
        "labelling_run": labelled["run_id"], "images": labelled["images"], "ok": labelled["ok"],
        "refined_run": refined["run_id"] if refined else None,
        "refine_decision": refined["decision"] if refined else None,
        "trained_on_version": version, "trained_on": labels_dir, "trained_on_reason": why,
        "model": trained.get("model"),
        **{f"{name}_MAE": _first_mae(result) for name, result in scored.items()},
    }
    logger.info("data-engine: %s", summary)
    create_table_artifact([{"measure": k, "value": str(v)} for k, v in summary.items()], key="data-engine",
                          description="The whole chain: labels, refinement, model, scores")
    return summary


def training_labels(train_on: str, refined: dict[str, Any] | None) -> tuple[str, str]:
    """Which label version to train on (``"refined"`` or ``"pseudo"``) and why, in words.

    Refined labels are used only when asked for (``train_on='refined'``) AND the refinement run
    verified them (its held-out check passed); a run that kept the source labels, or ran unchecked,
    sends training to the pseudo-labels.
    """
    if train_on == "pseudo":
        return "pseudo", "train_on='pseudo'"
    if refined is None:
        return "pseudo", "refinement was not run (refine=False)"
    if refined.get("labels_verified"):
        return "refined", f"refinement run {refined['run_id']} verified its labels: {refined['reason']}"
    return "pseudo", (f"refinement run {refined['run_id']} did not verify its labels ({refined['decision']}): "
                      f"{refined['reason']}")


def _heldout_truth(pred_dir: Path, truth: Path, out: Path) -> Path:
    """``out`` holding the true masks of the held-out images only (the model predicts just those),
    so scoring the model never reports the training images as missing predictions."""
    stems = {p.stem for p in pred_dir.glob("*.png")}
    if out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for mask in sorted(truth.iterdir()):
        if mask.is_file() and mask.stem in stems:
            shutil.copy2(mask, out / mask.name)
    return out


def _first_mae(result: dict[str, Any]) -> float | None:
    metrics = result.get("metrics", {}) if isinstance(result, dict) else {}
    for block in metrics.values():
        return round(float(block["MAE"]), 4)
    return None


def deployments(project: Path) -> list:
    """``data-engine/default``: the whole chain on the sample set in ``data/``."""
    return [
        data_engine.to_deployment(
            name="default",
            parameters={
                "images": str(project / "data" / "raw" / "sample"),
                "workdir": str(project / "data"),
                "params_file": str(project / "params.yaml"),
            },
            tags=["sodforge", "gpu"],
            description="Label -> refine -> train -> evaluate, as subflows.",
        ),
    ]


if __name__ == "__main__":
    print(data_engine())
