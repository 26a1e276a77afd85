"""Flow ``build-pseudo-labels``: images -> manifest shards -> label shards -> catalog.

Run in-process with ``sodforge label IMAGES --workdir DIR``, or as the deployment
``build-pseudo-labels/default`` once ``sodforge serve`` is running.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from engine.catalog import Workdir, connect_readonly, summarize
from engine.catalog.lock import workdir_lock
from engine.catalog.runs import begin_attempt
from engine.labeling.plan import LABELLING_FLOW, label_params, plan_run, run_params, summary_of
from engine.labeling.preview import contact_sheet
from tasks.labeling import build_catalog_task, ingest_images, label_shard_task


def resolve_params(params_file: str | None, models: str | None, shard_size: int | None, overrides: dict | None):
    """params.yaml (if given and present) + the flow's own parameters, validated."""
    return label_params(params_file, models, shard_size, overrides)


@flow(name="build-pseudo-labels", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=1))
def build_pseudo_labels(
    images: str = "data/raw/sample",
    workdir: str = "data",
    models: Literal["tiny", "base", "large"] | str = "tiny",
    shard_size: int | None = None,
    params_file: str | None = "params.yaml",
    overrides: dict[str, dict[str, Any]] | None = None,
    captioner: str | None = None,
) -> dict[str, Any]:
    """Label every image under ``images`` into ``workdir`` (catalog at ``workdir/catalog.duckdb``).

    Args:
        images: a folder of images (or a set folder with ``images/`` and optional ``depth/`` etc.).
        workdir: where shards and the catalog go.
        models: model profile from params.yaml (``tiny`` needs no download).
        shard_size: images per shard (default: params.yaml ``ingest.shard_size``).
        params_file: parameters file; missing means built-in defaults.
        overrides: per-section parameter overrides, e.g. ``{"label": {"box_threshold": 0.4}}``.
        captioner: fine-tuned captioner checkpoint to caption with (``none``: the profile's captioner);
            default: params.yaml ``models.captioner_checkpoint``. The summary says which one ran.
    """
    params = resolve_params(params_file, models, shard_size, overrides)
    if not Path(images).is_dir():
        raise ValueError(f"{images}: images folder not found")
    wd = Workdir.at(workdir)
    with workdir_lock(wd.root, "a labelling run"):
        return _label_locked(images, wd, params, captioner)


def _label_locked(images: str, wd: Workdir, params, captioner: str | None) -> dict[str, Any]:
    logger = get_run_logger()
    started = time.perf_counter()
    scanned = ingest_images(str(Path(images).resolve()), str(wd.manifest_dir), params.ingest.shard_size,
                            params.ingest.max_pixels, str(wd.reports_dir / "ingest_skipped_files.tsv"))
    manifest_paths = scanned["shards"]
    plan = plan_run(wd, params, manifest_paths, captioner)
    run_id = plan.run_id
    record = begin_attempt(wd, run_id, LABELLING_FLOW, plan.identities, run_params(params, plan))
    live = _has_label_shards(wd)
    try:
        build_catalog_task(str(wd.root))  # the run's shards show up in the catalog as they land
    except (OSError, ValueError) as err:  # e.g. a damaged shard: labelling recomputes it, the last build counts
        logger.warning("catalog not refreshed before labelling (%s); it is rebuilt at the end", err)
    logger.info("labelling run %s: %d shards, models %s; captioner: %s", run_id, len(manifest_paths),
                params.models.profile, plan.captioner.describe())

    label_dict, models_dict = dataclasses.asdict(params.label), dataclasses.asdict(plan.models)
    futures = [
        label_shard_task.submit(
            shard=m.stem, manifest_path=str(m), out_path=str(plan.out_path(m)), fingerprint=fp,
            run_id=run_id, label=label_dict, models=models_dict,
        )
        for m, fp in zip(plan.manifest_paths, plan.fingerprints, strict=True)
    ]
    # A first run in a workdir has no label files yet, so its catalog view starts empty: rebuild it
    # once the first shard lands, then DuckDB's glob picks up the next shards by itself.
    on_first_written = None if live else (lambda: build_catalog_task(str(wd.root)))
    results = _gather_with_progress(futures, logger, on_first_written)

    counts = {s: sum(r["counts"].get(s, 0) for r in results) for s in ("ok", "no_object", "error")}
    workers = [r.get("worker") for r in results if r.get("worker")]
    record.complete(counts, len(results), sum(r["skipped"] for r in results), time.perf_counter() - started)
    record.save(wd)
    summary = {**summary_of(record, plan, build_catalog_task(str(wd.root))),
               "unreadable_files": scanned["unreadable"], "skipped_files": len(scanned["skipped"]),
               "shards_per_worker": {w: workers.count(w) for w in sorted(set(workers))}}
    try:
        _publish_summary(summary["catalog"], summary, wd)
    except OSError as err:  # the labels are done and recorded; previews are a nicety (e.g. a full disk)
        logger.warning("previews not written: %s", err)
    return summary


def _has_label_shards(wd: Workdir) -> bool:
    return wd.labels_root.is_dir() and any(wd.labels_root.rglob("*.parquet"))


def _gather_with_progress(futures: list, logger, on_first_written=None) -> list[dict[str, Any]]:
    """Wait for the shard futures in order, logging images done, throughput and ETA."""
    started, done_images, results = time.perf_counter(), 0, []
    for index, future in enumerate(futures, start=1):
        result = future.result()
        results.append(result)
        if on_first_written is not None and not result["skipped"]:
            on_first_written()
            on_first_written = None
        done_images += sum(result["counts"].values())
        elapsed = time.perf_counter() - started
        rate = done_images / elapsed if elapsed > 0 else 0.0
        eta = (len(futures) - index) * elapsed / index
        logger.info("progress: %d/%d shards, %d images, %.1f img/s, ETA %.0f s", index, len(futures), done_images, rate, eta)
    return results


def _publish_summary(catalog: str, summary: dict[str, Any], workdir: Workdir) -> None:
    runs = [r for r in summarize(catalog) if r.run_id == summary["run_id"]]
    top = ", ".join(f"{c} ({n})" for c, n in runs[0].top_categories) if runs else ""
    rows = [{"measure": k, "value": str(v)} for k, v in summary.items()] + [{"measure": "top categories", "value": top}]
    create_table_artifact(rows, key="pseudo-label-run", description=f"Labelling run {summary['run_id']}")
    sheets = render_previews(catalog, summary["run_id"], workdir.reports_dir / f"run={summary['run_id']}")
    if sheets:
        lines = [f"- {name}: `{path}`" for name, path in sheets.items()]
        create_markdown_artifact(
            "# Pseudo-label previews\n\nMask in red, boxes in yellow.\n\n" + "\n".join(lines),
            key="pseudo-label-previews", description=f"Contact sheets of run {summary['run_id']}",
        )


def render_previews(catalog: str, run_id: str, out_dir: Path, count: int = 16) -> dict[str, Path]:
    """Contact sheets of the best- and worst-quality labels and of the errors of ``run_id``."""
    selections = {
        "lowest_quality": "status = 'ok' ORDER BY quality_score ASC, image_id",
        "highest_quality": "status = 'ok' ORDER BY quality_score DESC, image_id",
        "not_ok": "status <> 'ok' ORDER BY status, image_id",
    }
    sheets = {}
    with connect_readonly(catalog) as con:
        for name, where in selections.items():
            cursor = con.execute(
                "SELECT l.*, m.mask_rle, d.boxes_xyxy FROM label_quality l "
                "LEFT JOIN masks m USING (image_id, run_id) "
                "LEFT JOIN (SELECT image_id, run_id, list([x0, y0, x1, y1]) AS boxes_xyxy FROM detections GROUP BY ALL) d "
                f"USING (image_id, run_id) WHERE run_id = ? AND {where} LIMIT ?", [run_id, count],
            )
            columns = [c[0] for c in cursor.description]
            rows = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
            if rows:
                sheets[name] = contact_sheet(rows, out_dir / f"{name}.png")
    return sheets


def task_runner(dask_workers: int = 0, dask_address: str | None = None, gpus: list[str] | None = None):
    """Threads in this process by default; Dask (prefect-dask) to scale out.

    ``dask_address`` connects to an existing cluster (``tcp://scheduler:8786``); ``dask_workers > 0``
    starts a local cluster of that many single-threaded worker processes bound to 127.0.0.1;
    ``gpus`` (``["0", "1"]``) starts one worker per GPU, pinned with ``CUDA_VISIBLE_DEVICES``
    (:mod:`flows.gpu_cluster`). Each worker process loads the models once and keeps them.
    """
    if sum(bool(x) for x in (dask_address, dask_workers, gpus)) > 1:
        raise ValueError("give one of dask_address (an existing cluster), dask_workers or gpus (a local one), not both")
    if not dask_address and dask_workers <= 0 and not gpus:
        return ThreadPoolTaskRunner(max_workers=1)
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    if gpus:
        return DaskTaskRunner(cluster_class="flows.gpu_cluster.gpu_cluster", cluster_kwargs={"devices": list(gpus)})
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": dask_workers, "threads_per_worker": 1, "processes": True,
            "host": "127.0.0.1", "dashboard_address": None,
        }
    )


if __name__ == "__main__":
    print(build_pseudo_labels())
