"""Multi-scale backbones (strides 4/8/16/32) from transformers, with ResNet checkpoint mapping.

Usage::

    backbone = build_backbone("resnet50", "moco_v2_200ep_pretrain.pth.tar")  # or ("tiny"), ("swin_t", hf_dir)
    c2, c3, c4, c5 = backbone(images)  # images (B, 3, H, W) float in [0, 1]; backbone.channels per map
"""

from engine.backbones.registry import BACKBONES, STRIDES, Backbone, BackboneSpec, build_backbone
from engine.backbones.resnet_checkpoint import (
    extract_torchvision_state,
    hf_to_torchvision_key,
    load_resnet_checkpoint,
    map_torchvision_state,
    read_state_dict,
    torchvision_to_hf_key,
)

__all__ = [
    "BACKBONES",
    "STRIDES",
    "Backbone",
    "BackboneSpec",
    "build_backbone",
    "extract_torchvision_state",
    "hf_to_torchvision_key",
    "load_resnet_checkpoint",
    "map_torchvision_state",
    "read_state_dict",
    "torchvision_to_hf_key",
]
