"""Salient-object detection model: DEDecoder with dynamic upsampling and an edge branch, losses,
label-shard data, training (Lightning Fabric) and prediction."""

from engine.sod.decoder import DEDecoder
from engine.sod.losses import (
    BCELoss,
    EdgeLoss,
    IoULoss,
    LossWeights,
    PartialBCELoss,
    SODLoss,
    bce_loss,
    confident_pixels,
    edge_loss,
    iou_loss,
    mask_edges,
    partial_bce_loss,
)
from engine.sod.model import ModelConfig, SODNet, SODOutput, load_model, save_model
from engine.sod.upsample import BilinearUpsample, DynamicUpsample

__all__ = [
    "BCELoss",
    "BilinearUpsample",
    "DEDecoder",
    "DynamicUpsample",
    "EdgeLoss",
    "IoULoss",
    "LossWeights",
    "ModelConfig",
    "PartialBCELoss",
    "SODLoss",
    "SODNet",
    "SODOutput",
    "bce_loss",
    "confident_pixels",
    "edge_loss",
    "iou_loss",
    "load_model",
    "mask_edges",
    "partial_bce_loss",
    "save_model",
]
