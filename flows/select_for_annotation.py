"""Flow ``select-for-annotation``: pick the next round of images for people to annotate.

First rounds spread over the set (k-means on cheap colour embeddings); later rounds can ask for
the worst pseudo-labels (``strategy=worst_quality``). An image is never selected twice, and
images already annotated are skipped. ``sodforge annotate`` then serves the selected rounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_table_artifact

from tasks.annotate import load_select_params, select_round_task


@flow(name="select-for-annotation", log_prints=True)
def select_for_annotation(
    images: str = "data/raw/sample",
    workdir: str = "data",
    fraction: float | None = None,
    count: int | None = None,
    strategy: Literal["spread", "worst_quality"] | None = None,
    params_file: str | None = "params.yaml",
) -> dict[str, Any]:
    """Write ``<workdir>/catalog/annotation_rounds/round-NNNN.parquet`` (params.yaml section ``annotate``)."""
    overrides = {k: v for k, v in {"fraction": fraction, "count": count, "strategy": strategy}.items() if v is not None}
    settings = load_select_params(params_file, overrides)
    result = select_round_task(images, workdir, {**vars(settings)})
    create_table_artifact([{"measure": k, "value": str(v)} for k, v in result.items()], key="annotation-round",
                          description="Images selected for annotation")
    return result


def deployments(project: Path) -> list:
    return [
        select_for_annotation.to_deployment(
            name="default",
            parameters={"images": str(project / "data" / "raw" / "sample"), "workdir": str(project / "data"),
                        "params_file": str(project / "params.yaml")},
            tags=["sodforge"],
            description="Pick the next images for people to annotate (spread, or worst pseudo-labels first).",
        )
    ]
