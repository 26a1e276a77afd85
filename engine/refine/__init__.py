"""Unsupervised label refinement (the USOD seed): PCL-SD saliency cues, SPR, adapters.

Library only (no Prefect). Pieces: :mod:`par` (R_pri, the pixel-adaptive refiner), :mod:`losses`
(PCL-SD, saliency distilling, IoU, BCE, multi-scale consistency), :mod:`models` (SCE and the
two-stream detector), :mod:`spr` (the update rule and the disk-backed label bank), :mod:`cues`
(cues -> initial labels), :mod:`adapters` (adapter-tuning), :mod:`plan` / :mod:`stages` (a run over
a workdir), :mod:`records` (refined label rows), :mod:`corruptions` (benchmark label noise).
"""

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
from engine.refine.plan import RefinePlan, find_source_run, load_plan, plan_refine_run, refined_labels_root
from engine.refine.records import REFINE_COLUMNS, REFINED_LABEL_SCHEMA
from engine.refine.spr import LabelBank, SelfRectifier, spr_update

__all__ = [
    "REFINED_LABEL_SCHEMA",
    "REFINE_COLUMNS",
    "BCELoss",
    "DetectorLoss",
    "IoULoss",
    "LabelBank",
    "MultiScaleConsistencyLoss",
    "PCLSDLoss",
    "PixelAdaptiveRefiner",
    "RefineParams",
    "RefinePlan",
    "SaliencyDistillingLoss",
    "SelfRectifier",
    "bce_loss",
    "find_source_run",
    "iou_loss",
    "load_plan",
    "multiscale_consistency_loss",
    "pcl_sd_loss",
    "pcl_threshold",
    "pixel_adaptive_refine",
    "plan_refine_run",
    "refined_labels_root",
    "saliency_distilling_loss",
    "spr_update",
]
