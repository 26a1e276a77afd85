"""Binary masks: COCO RLE codec and per-mask measurements."""

from engine.masks.ops import boundary_smoothness, connected_components, mask_area_fraction
from engine.masks.rle import decode_rle, encode_rle, rle_area

__all__ = [
    "boundary_smoothness",
    "connected_components",
    "decode_rle",
    "encode_rle",
    "mask_area_fraction",
    "rle_area",
]
