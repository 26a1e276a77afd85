"""Serve the deployments against a running Prefect API (``sodforge serve`` starts both)."""

from __future__ import annotations

from pathlib import Path

from prefect import serve

from flows.build_pseudo_labels import build_pseudo_labels

DEPLOYMENT_NAME = "default"


def deployments(project: Path):
    """The deployments with defaults that work from ``project`` (the sample set, ``data/`` workdir)."""
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
