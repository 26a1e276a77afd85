"""What makes two labelling runs produce the same labels, beyond models and label parameters.

Run ids and shard fingerprints hash the model identities (weights), the label parameters and the
*labelling environment* below: where the models run (device type and precision, never a GPU index)
and the code that turns model outputs into labels (torch, transformers and this package's own
labelling-code version). Change any of them and a new run is written beside the old one; stale
shards never count as current.

Bump :data:`LABELLING_CODE_VERSION` on purpose whenever a change in ``engine/labeling`` or the model
adapters changes the labels that identical models and parameters produce (a different phrase rule,
box policy, mask post-processing, preprocessing...). Refactors that keep labels identical do not
bump it.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from typing import Any

LABELLING_CODE_VERSION = 2
"""Version of the labelling logic; part of every run id and shard fingerprint (see module doc)."""

LIBRARIES = ("torch", "transformers")


@cache
def library_versions() -> dict[str, str]:
    """Installed versions of the libraries whose numerics shape the labels (``"missing"`` if absent)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def precision_name(autocast_dtype: Any) -> str:
    """``fp32`` for no autocast, else ``bf16`` / ``fp16`` (from a ``torch.dtype`` or its name)."""
    if autocast_dtype is None:
        return "fp32"
    name = str(autocast_dtype).removeprefix("torch.")
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(name, name)


def runtime_identity(runtime: Any | None) -> dict[str, str]:
    """Device *type* (``cpu``/``cuda``/...) and precision of a :class:`engine.models.runtime.Runtime`.

    The GPU index is left out on purpose: ``cuda:0`` and ``cuda:1`` give the same labels, so a run
    can resume on another GPU. ``None`` (models without a runtime, e.g. test fakes) gives ``unknown``.
    """
    if runtime is None:
        return {"device": "unknown", "precision": "unknown"}
    return {"device": runtime.device.type, "precision": precision_name(runtime.autocast_dtype)}


def code_identity() -> dict[str, Any]:
    """The labelling-code version and library versions of this process."""
    return {"labelling_code": LABELLING_CODE_VERSION, **library_versions()}
