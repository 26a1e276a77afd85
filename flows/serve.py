"""Serve the deployments against a running Prefect API (``sodforge serve`` starts both)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from prefect import serve

import flows
from flows.build_pseudo_labels import build_pseudo_labels

DEPLOYMENT_NAME = "default"


def deployments(project: Path) -> list:
    """Every deployment: this module's plus ``deployments(project)`` of each other module in flows/."""
    found = own_deployments(project)
    for info in sorted(pkgutil.iter_modules(flows.__path__), key=lambda m: m.name):
        if info.name == "serve":
            continue
        module = importlib.import_module(f"flows.{info.name}")
        if hasattr(module, "deployments"):
            found.extend(module.deployments(project))
    return found


def own_deployments(project: Path) -> list:
    """The labelling deployment with defaults that work from ``project`` (sample set, ``data/``)."""
    return [
        build_pseudo_labels.to_deployment(
            name=DEPLOYMENT_NAME,
            parameters={
                "images": str(project / "data" / "raw" / "sample"),
                "workdir": str(project / "data"),
                "models": "tiny",
                "params_file": str(project / "params.yaml"),
            },
            tags=["sodforge"],
            description="Label images with BLIP -> GroundingDINO -> SAM into Parquet shards and a DuckDB catalog.",
        ),
    ]


def serve_deployments(project: Path) -> None:
    """Register and serve every deployment (blocks until interrupted)."""
    serve(*deployments(project), print_starting_message=True)
