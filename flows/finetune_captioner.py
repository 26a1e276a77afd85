"""Flow ``finetune-captioner``: human texts -> fine-tuned BLIP checkpoint + before/after validation.

The texts come from a JSON-lines file (``texts``; the DVC stage uses the simulated annotator's
file for the sample set) or from the annotation store of ``workdir`` (what people typed in
``sodforge annotate``). The checkpoint lands in ``out`` (``models/captioner-human`` for texts people
typed; the DVC pipeline writes its own to ``data/models/captioner``). Labelling uses a checkpoint
only when told: ``models.captioner_checkpoint`` in params.yaml or ``sodforge label --captioner``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from engine.captioning.train import FinetuneParams
from engine.params import load_params, load_section
from tasks.annotate import collect_texts_task, finetune_task, write_metrics_task

METRIC_KEYS = ("exact", "category", "token_f1", "caption_f1")


def resolve_base(params_file: str | None, models: str | None, finetune: FinetuneParams) -> str:
    """The BLIP to start from: ``finetune.base``, else the profile's captioner (never the fine-tune itself)."""
    if finetune.base:
        return finetune.base
    path = params_file if params_file and Path(params_file).is_file() else None
    settings = load_params(path).models
    return settings.specs(models or settings.profile, finetuned=False)["captioner"].source


@flow(name="finetune-captioner", log_prints=True)
def finetune_captioner_flow(
    images: str = "data/raw/sample",
    workdir: str = "data",
    texts: str | None = None,
    out: str = "models/captioner-human",
    metrics_file: str = "data/reports/captioner_metrics.json",
    params_file: str | None = "params.yaml",
    models: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fine-tune BLIP on human texts and report phrase-match metrics before and after.

    Args:
        images: the image set the texts refer to (relative ``image`` paths in ``texts`` start here).
        workdir: annotation store to read texts from when ``texts`` is not given.
        texts: JSON-lines file of ``{"image", "text"}`` (e.g. the simulated annotator's).
        out: checkpoint directory (model + processor, ``save_pretrained``).
        metrics_file: DVC metric JSON.
        params_file: parameters (section ``finetune``; ``models`` for the base captioner).
        models: model profile whose captioner is the base (default: params.yaml's).
        overrides: keys of the ``finetune`` section, e.g. ``{"epochs": 3}``.
    """
    logger = get_run_logger()
    path = params_file if params_file and Path(params_file).is_file() else None
    settings = load_section(path, "finetune", FinetuneParams, overrides)
    base = resolve_base(params_file, models, settings)
    if texts is None:
        texts = collect_texts_task(images, workdir, str(Path(out).with_name(Path(out).name + ".texts.jsonl")))
    logger.info("fine-tuning %s on %s into %s", base, texts, out)
    result = finetune_task(texts, images, out, {**vars(settings)}, base)
    metrics = {k: v for k, v in result.items() if k not in ("samples_after", "out_dir")}
    write_metrics_task(metrics, metrics_file)
    _publish(result, base)
    return result


def _publish(result: dict[str, Any], base: str) -> None:
    rows = [{"measure": key, "before": result["before"][key], "after": result["after"][key]} for key in METRIC_KEYS]
    rows.append({"measure": "val images", "before": result["val_images"], "after": result["val_images"]})
    create_table_artifact(rows, key="captioner-validation", description=f"BLIP fine-tuning from {base}: validation")
    samples = "\n".join(f"| {', '.join(s['human'])} | {s['generated']} |" for s in result.get("samples_after", []))
    create_markdown_artifact(
        f"### Fine-tuned captioner\n\ncheckpoint `{result['out_dir']}`, train loss "
        f"{result['train_loss_first']} -> {result['train_loss_last']}\n\n| human | generated |\n|---|---|\n{samples}\n",
        key="captioner-samples",
    )


def deployments(project: Path) -> list:
    return [
        finetune_captioner_flow.to_deployment(
            name="default",
            parameters={
                "images": str(project / "data" / "raw" / "sample"),
                "workdir": str(project / "data"),
                "texts": str(project / "data" / "annotations" / "simulated_texts.jsonl"),
                "out": str(project / "data" / "models" / "captioner"),  # simulated texts: the DVC stage's checkpoint
                "metrics_file": str(project / "data" / "reports" / "captioner_metrics.json"),
                "params_file": str(project / "params.yaml"),
            },
            tags=["sodforge"],
            description="Fine-tune BLIP on human texts; before/after phrase-match metrics.",
        )
    ]


if __name__ == "__main__":
    print(finetune_captioner_flow())
