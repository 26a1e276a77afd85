"""What a labelling run will do, decided before any model loads or any orchestrator starts.

:func:`plan_run` names the run (models incl. the chosen captioner, runtime, parameters, code and
library versions) and lists its shards with their expected fingerprints; :func:`finish_if_current`
completes a run with nothing left to label in well under a second, without Prefect (``sodforge
label`` calls it first, so a no-op rerun does not start a temporary Prefect server).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.captioning.checkpoint import CaptionerChoice, choose_captioner
from engine.catalog.layout import Workdir
from engine.catalog.runs import RunRecord, begin_attempt, load_record
from engine.labeling.identity import runtime_identity
from engine.labeling.pipeline import labelling_run_id
from engine.labeling.shard import shard_fingerprint
from engine.params import ModelsParams, Params, as_dict, load_params
from engine.storage import read_table, shard_is_current

LABELLING_FLOW = "build-pseudo-labels"
NO_CHECKPOINT = ("none", "profile")  # --captioner none: the profile's captioner, whatever params.yaml says


def label_params(params_file: str | Path | None, models: str | None = None, shard_size: int | None = None,
                 overrides: dict | None = None) -> Params:
    """params.yaml (if given and present) + a labelling run's own parameters, validated."""
    path = Path(params_file) if params_file else None
    merged: dict[str, dict] = {k: dict(v) for k, v in (overrides or {}).items()}
    if models:
        merged.setdefault("models", {})["profile"] = models
    if shard_size is not None:  # 0 is an error (checked with the other parameters), not "the default"
        merged.setdefault("ingest", {})["shard_size"] = shard_size
    params = load_params(path if path and path.is_file() else None, merged)
    params.models.specs(finetuned=False)  # an unknown model profile fails here, before any work
    return params


def choose_run_captioner(models: ModelsParams, captioner: str | None = None) -> tuple[ModelsParams, CaptionerChoice]:
    """The captioner of a run and ``models`` with ``captioner_checkpoint`` set to exactly that.

    ``captioner`` (``sodforge label --captioner``) overrides ``models.captioner_checkpoint`` and must
    be usable (ValueError otherwise); ``none`` means the profile's captioner. A checkpoint that comes
    from params.yaml and cannot be used is reported in :meth:`CaptionerChoice.describe` and not used.
    """
    profile_captioner = str(models.specs(finetuned=False)["captioner"].source)
    explicit = captioner is not None
    wanted = None if explicit and captioner.lower() in NO_CHECKPOINT else (captioner if explicit else models.captioner_checkpoint)
    choice = choose_captioner(profile_captioner, wanted, strict=explicit)
    resolved = dataclasses.replace(models, captioner_checkpoint=choice.source if choice.finetuned else None)
    return resolved, choice


@dataclass(frozen=True)
class RunPlan:
    """One labelling run over a workdir's manifest shards (see :func:`plan_run`)."""

    workdir: Workdir
    run_id: str
    identities: dict[str, Any]
    models: ModelsParams
    captioner: CaptionerChoice
    manifest_paths: tuple[Path, ...]
    fingerprints: tuple[str, ...]

    def out_path(self, manifest_path: Path) -> Path:
        return self.workdir.labels_dir(self.run_id) / Path(manifest_path).name

    def pending(self) -> list[Path]:
        """Manifest shards whose label shard is missing or not current."""
        return [m for m, fp in zip(self.manifest_paths, self.fingerprints, strict=True)
                if not shard_is_current(self.out_path(m), fp)]


def plan_run(workdir: Workdir, params: Params, manifest_paths: list[str | Path], captioner: str | None = None) -> RunPlan:
    """Name the run and its shards' fingerprints; resolves model sources but loads no weights."""
    from engine.models.registry import model_identities
    from engine.models.runtime import resolve_runtime

    models, choice = choose_run_captioner(params.models, captioner)
    runtime = resolve_runtime(models.device, models.precision)
    identities = {**model_identities(models.specs()), "runtime": runtime_identity(runtime)}
    run_id = labelling_run_id(identities, params.label)
    paths = tuple(Path(m) for m in manifest_paths)
    fingerprints = tuple(shard_fingerprint(m, identities, params.label) for m in paths)
    return RunPlan(workdir, run_id, identities, models, choice, paths, fingerprints)


def run_params(params: Params, plan: RunPlan) -> dict:
    """The resolved parameters stored in the run record (with the captioner actually used)."""
    return {**as_dict(params), "models": as_dict(plan.models)}


def shard_counts(path: Path) -> dict[str, int]:
    statuses = read_table(path).column("status").to_pylist()
    return {s: statuses.count(s) for s in set(statuses)}


def summary_of(record: RunRecord, plan: RunPlan, catalog: str) -> dict[str, Any]:
    """What ``sodforge label`` prints and the flow returns."""
    return {
        "run_id": record.run_id, "catalog": catalog, "images": record.images, "ok": record.ok,
        "no_object": record.no_object, "error": record.error, "shards": record.shards,
        "shards_skipped": record.shards_skipped, "seconds": round(record.seconds, 2),
        "captioner": plan.captioner.describe(),
    }


def finish_if_current(workdir: Workdir, params: Params, manifest_paths: list[str | Path],
                      captioner: str | None = None) -> dict[str, Any] | None:
    """Complete the run at once when it finished before and every shard is current; else None.

    Call it holding the workdir lock (:func:`engine.catalog.lock.workdir_lock`). The run record
    counts one more (completed) attempt; the catalog is rebuilt (views only, fast).
    """
    from engine.catalog.views import build_catalog

    started = time.perf_counter()
    plan = plan_run(workdir, params, manifest_paths, captioner)
    previous = load_record(workdir, plan.run_id)
    if previous is None or previous.state != "completed" or plan.pending():
        return None
    record = begin_attempt(workdir, plan.run_id, LABELLING_FLOW, plan.identities, run_params(params, plan))
    counts: dict[str, int] = {}
    for manifest in plan.manifest_paths:
        for status, n in shard_counts(plan.out_path(manifest)).items():
            counts[status] = counts.get(status, 0) + n
    shards = len(plan.manifest_paths)
    record.complete(counts, shards, shards, time.perf_counter() - started)
    record.save(workdir)
    return summary_of(record, plan, str(build_catalog(workdir)))
