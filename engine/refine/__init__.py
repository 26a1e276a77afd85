"""Unsupervised label refinement (the USOD seed): PCL-SD saliency cues, SPR, adapters.

Library only (no Prefect). Pieces: :mod:`par` (R_pri, the pixel-adaptive refiner), :mod:`losses`
(PCL-SD, saliency distilling, IoU, BCE, multi-scale consistency), :mod:`models` (SCE and the
two-stream detector), :mod:`spr` (the update rule and the disk-backed label bank), :mod:`cues`
(cues -> initial labels), :mod:`adapters` (adapter-tuning), :mod:`plan` / :mod:`stages` (a run over
a workdir's labelling run or any label-shard folder), :mod:`gate` (the held-out self-check that lets
refined labels replace their source only when they are shown not to be worse), :mod:`update`
(refined labels written back at full resolution, only where the change is confident), :mod:`records`
(refined label rows), :mod:`corruptions` (realistic label errors for the benchmark and the gate).
"""

from engine.refine.gate import decide, holdout_ids
from engine.refine.losses import (
    BCELoss,
    DetectorLoss,
    IoULoss,
    MultiScaleConsistencyLoss,
    PCLSDLoss,
    SaliencyDistillingLoss,
    bce_loss,
    iou_loss,
    multiscale_consistency_loss,
    pcl_sd_loss,
    pcl_threshold,
    saliency_distilling_loss,
)
from engine.refine.par import PixelAdaptiveRefiner, pixel_adaptive_refine
from engine.refine.params import RefineParams
from engine.refine.plan import (
    RefinePlan,
    find_label_folder,
    find_source_run,
    load_plan,
    plan_label_folder_run,
    plan_refine_run,
    refined_labels_root,
)
from engine.refine.records import REFINE_COLUMNS, REFINED_LABEL_SCHEMA
from engine.refine.spr import LabelBank, SelfRectifier, spr_update
from engine.refine.update import LabelUpdate, update_label

__all__ = [
    "REFINED_LABEL_SCHEMA",
    "REFINE_COLUMNS",
    "BCELoss",
    "DetectorLoss",
    "IoULoss",
    "LabelBank",
    "LabelUpdate",
    "MultiScaleConsistencyLoss",
    "PCLSDLoss",
    "PixelAdaptiveRefiner",
    "RefineParams",
    "RefinePlan",
    "SaliencyDistillingLoss",
    "SelfRectifier",
    "bce_loss",
    "decide",
    "find_label_folder",
    "find_source_run",
    "holdout_ids",
    "iou_loss",
    "load_plan",
    "multiscale_consistency_loss",
    "pcl_sd_loss",
    "pcl_threshold",
    "pixel_adaptive_refine",
    "plan_label_folder_run",
    "plan_refine_run",
    "refined_labels_root",
    "saliency_distilling_loss",
    "spr_update",
    "update_label",
]
