"""Binary masks: COCO RLE codec and per-mask measurements."""

from engine.masks.ops import (
    MIN_PART_FRAC,
    boundary_smoothness,
    box_agreement,
    connected_components,
    count_parts,
    mask_area_fraction,
    rectangularity,
    solid_hole_fraction,
)
from engine.masks.rle import decode_rle, encode_rle, rle_area

__all__ = [
    "MIN_PART_FRAC",
    "boundary_smoothness",
    "box_agreement",
    "connected_components",
    "count_parts",
    "decode_rle",
    "encode_rle",
    "mask_area_fraction",
    "rectangularity",
    "rle_area",
    "solid_hole_fraction",
]
