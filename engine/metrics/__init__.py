"""Evaluation of saliency maps and pseudo-labels with PySODMetrics (MAE, S, weighted F, F, E).

Start with :func:`evaluate_folder_dataset` (a prediction folder against a mask folder),
:func:`evaluate_label_run` (a labelling run's masks against true masks) and :func:`write_outputs`.
"""

from engine.metrics.benchmarks import (
    DatasetSpec,
    Folder,
    load_dataset_config,
    single_spec,
    spec_from_dict,
    spec_to_dict,
    with_pred_root,
)
from engine.metrics.evaluate import DatasetReport, EvalItem, evaluate_items
from engine.metrics.labels import latest_run_id
from engine.metrics.params import EvaluateParams
from engine.metrics.report import COUNT_KEYS, markdown_table, metrics_block
from engine.metrics.run import (
    evaluate_folder_dataset,
    evaluate_label_run,
    evaluate_label_shards,
    write_outputs,
)
from engine.metrics.sod import METRIC_KEYS, PER_IMAGE_KEYS, DatasetScores, SODMetrics

__all__ = [
    "COUNT_KEYS",
    "METRIC_KEYS",
    "PER_IMAGE_KEYS",
    "DatasetReport",
    "DatasetScores",
    "DatasetSpec",
    "EvalItem",
    "EvaluateParams",
    "Folder",
    "SODMetrics",
    "evaluate_folder_dataset",
    "evaluate_items",
    "evaluate_label_run",
    "evaluate_label_shards",
    "latest_run_id",
    "load_dataset_config",
    "markdown_table",
    "metrics_block",
    "single_spec",
    "spec_from_dict",
    "spec_to_dict",
    "with_pred_root",
    "write_outputs",
]
