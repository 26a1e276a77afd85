"""Labelling: caption -> phrase -> boxes -> masks -> quality signals, per batch and per shard."""

from engine.labeling.phrase import Phrase, extract_phrase
from engine.labeling.pipeline import ImageItem, Labeler, LabelModels, labelling_run_id, load_label_models
from engine.labeling.record import LABEL_SCHEMA, PseudoLabel, labels_to_table
from engine.labeling.shard import ShardResult, label_shard

__all__ = [
    "LABEL_SCHEMA",
    "ImageItem",
    "LabelModels",
    "Labeler",
    "Phrase",
    "PseudoLabel",
    "ShardResult",
    "extract_phrase",
    "label_shard",
    "labelling_run_id",
    "labels_to_table",
    "load_label_models",
]
