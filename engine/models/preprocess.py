"""Model inputs made with torch ops instead of the transformers PIL processors.

The processors run per image on the calling thread and spend most of their time in float64 NumPy
copies (GroundingDINO ~95 ms for a 480x640 photo). Here each model's input transform is read once
from its saved processor (:class:`ImageTransform`) and applied in two steps:

1. :meth:`ImageTransform.resize` (prefetch workers, CPU): ``(H, W, 3) uint8`` -> ``(3, h, w) uint8``
   with PIL's own resampling on uint8, as the processors do, so the bytes are identical (torch's
   antialiased uint8 resize is ~2x faster but differs by 1 grey level on some pixels, and that is
   enough to swap GroundingDINO's near-tied proposals).
2. :func:`collate` + :meth:`PixelBatch.to_model`: pad onto the batch canvas and normalise,
   ``((x / 255) - mean) / std`` inside each image and 0 in the padding, as the processors (within
   1e-6: one fused multiply-add instead of NumPy's float64 rescale then float32 normalise).
   On CPU this happens in the prefetch worker (``normalize=True``); on a GPU the uint8 batch is
   copied (4x smaller than float) and normalised there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

ResizeRule = Literal["fixed", "shortest_longest", "longest", "none"]
_PIL_MODES = {2: "bilinear", 3: "bicubic"}  # PIL.Image.Resampling values the processors use


@dataclass(frozen=True)
class ImageTransform:
    """How one model wants its pixels, as its transformers image processor defines it.

    ``rule``: ``fixed`` (resize to ``size_hw``), ``shortest_longest`` (shortest edge to ``size[0]``
    unless the longest would pass ``size[1]``, GroundingDINO/DETR), ``longest`` (longest edge to
    ``size[0]``, SAM) or ``none`` (keep the image size). ``pad_hw``: a fixed canvas (SAM);
    otherwise the canvas is the image rounded up to ``pad_multiple`` (1 = no padding of its own).
    """

    rule: ResizeRule
    size: tuple[int, ...] = ()
    mode: Literal["bilinear", "bicubic"] = "bilinear"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1 / 255
    pad_hw: tuple[int, int] | None = None
    pad_multiple: int = 1

    def output_size(self, size_hw: tuple[int, int]) -> tuple[int, int]:
        """``(h, w)`` the image is resized to (the processors' integer rounding, exactly)."""
        height, width = int(size_hw[0]), int(size_hw[1])
        if self.rule == "none":
            return height, width
        if self.rule == "fixed":
            return int(self.size[0]), int(self.size[1])
        if self.rule == "longest":
            scale = self.size[0] * 1.0 / max(height, width)
            return int(height * scale + 0.5), int(width * scale + 0.5)
        from transformers.image_transforms import get_size_with_aspect_ratio

        return tuple(get_size_with_aspect_ratio((height, width), self.size[0], self.size[1]))

    def canvas(self, resized_hw: tuple[int, int]) -> tuple[int, int]:
        """The padded ``(H, W)`` an image of ``resized_hw`` is placed on (top-left aligned)."""
        if self.pad_hw is not None:
            return self.pad_hw
        m = max(1, self.pad_multiple)
        return -(-resized_hw[0] // m) * m, -(-resized_hw[1] // m) * m

    def resize(self, rgb: np.ndarray) -> torch.Tensor:
        """``(H, W, 3) uint8`` -> ``(3, h, w) uint8`` with PIL's filter, byte-identical to the processor.

        CPU, thread-safe; Pillow releases the GIL while resampling, so prefetch threads run in parallel.
        """
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            got = f"{type(rgb).__name__} {getattr(rgb, 'dtype', '')} {getattr(rgb, 'shape', '')}"
            raise TypeError(f"expected an (H, W, 3) uint8 RGB array, got {got}")
        out_hw = self.output_size(rgb.shape[:2])
        if out_hw != tuple(rgb.shape[:2]):
            resample = Image.Resampling.BICUBIC if self.mode == "bicubic" else Image.Resampling.BILINEAR
            rgb = np.asarray(Image.fromarray(rgb).resize((out_hw[1], out_hw[0]), resample=resample))
        array = np.ascontiguousarray(rgb)
        return torch.from_numpy(array if array.flags.writeable else array.copy()).permute(2, 0, 1).contiguous()

    @classmethod
    def from_processor(cls, image_processor: Any, pad_multiple: int = 1) -> ImageTransform:
        """Read the transform of a BLIP / GroundingDINO / SAM image processor (PIL or fast)."""
        size = _as_dict(getattr(image_processor, "size", None))
        resample = getattr(image_processor, "resample", 2)
        mode = _PIL_MODES.get(int(getattr(resample, "value", resample)), None)
        if mode is None:
            raise ValueError(f"{type(image_processor).__name__}: unsupported resample filter {resample!r}")
        if not getattr(image_processor, "do_resize", True):
            rule, dims = "none", ()
        elif size.get("shortest_edge") and size.get("longest_edge"):
            rule, dims = "shortest_longest", (size["shortest_edge"], size["longest_edge"])
        elif size.get("longest_edge"):
            rule, dims = "longest", (size["longest_edge"],)
        elif size.get("height") and size.get("width"):
            rule, dims = "fixed", (size["height"], size["width"])
        else:
            raise ValueError(f"{type(image_processor).__name__}: unsupported size {size}")
        pad = _as_dict(getattr(image_processor, "pad_size", None)) if getattr(image_processor, "do_pad", False) else {}
        normalize = getattr(image_processor, "do_normalize", True)
        return cls(
            rule=rule, size=tuple(int(d) for d in dims), mode=mode,
            mean=_triple(image_processor.image_mean) if normalize else (0.0, 0.0, 0.0),
            std=_triple(image_processor.image_std) if normalize else (1.0, 1.0, 1.0),
            scale=float(image_processor.rescale_factor) if getattr(image_processor, "do_rescale", True) else 1.0,
            pad_hw=(int(pad["height"]), int(pad["width"])) if pad.get("height") else None,
            pad_multiple=pad_multiple,
        )

    def with_pad_multiple(self, pad_multiple: int) -> ImageTransform:
        return replace(self, pad_multiple=pad_multiple)


def _as_dict(size: Any) -> dict:
    if size is None:
        return {}
    if isinstance(size, dict):
        return size
    return {k: getattr(size, k, None) for k in ("height", "width", "shortest_edge", "longest_edge")}


def _triple(value: Any) -> tuple[float, float, float]:
    values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3)]
    return values[0], values[1], values[2]


@dataclass
class PixelBatch:
    """Images of one model call on one canvas.

    ``pixels``: ``(B, 3, H, W)``, uint8 (not yet normalised) or float32 (normalised, 0 in padding);
    ``sizes_hw``: each image's resized size inside the canvas; ``original_hw``: before resizing.
    """

    pixels: torch.Tensor
    sizes_hw: list[tuple[int, int]]
    original_hw: list[tuple[int, int]]
    transform: ImageTransform
    normalized: bool = field(default=False)

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def canvas_hw(self) -> tuple[int, int]:
        return int(self.pixels.shape[-2]), int(self.pixels.shape[-1])

    def subset(self, rows: list[int]) -> PixelBatch:
        """The batch of ``rows`` only (no copy when that is every row, in order)."""
        if rows == list(range(len(self))):
            return self
        index = torch.as_tensor(rows, dtype=torch.long)
        return PixelBatch(
            self.pixels.index_select(0, index), [self.sizes_hw[r] for r in rows],
            [self.original_hw[r] for r in rows], self.transform, self.normalized,
        )

    def valid_mask(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """``(B, H, W) uint8``: 1 on each image's pixels, 0 on padding (GroundingDINO's pixel_mask)."""
        height, width = self.canvas_hw
        sizes = torch.as_tensor(self.sizes_hw, dtype=torch.long, device=device).reshape(-1, 2)
        rows = torch.arange(height, device=device)[None, :, None] < sizes[:, 0, None, None]
        cols = torch.arange(width, device=device)[None, None, :] < sizes[:, 1, None, None]
        return (rows & cols).to(torch.uint8)

    def to_model(self, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Normalised ``(B, 3, H, W)`` pixels on ``device`` in ``dtype`` (normalising there if needed)."""
        pixels = self.pixels.to(device, non_blocking=True)
        if not self.normalized:
            pixels = normalize(pixels, self.sizes_hw, self.transform)
        return pixels.to(dtype)


def normalize(pixels: torch.Tensor, sizes_hw: list[tuple[int, int]], transform: ImageTransform) -> torch.Tensor:
    """``(B, 3, H, W) uint8`` -> float32 ``((x * scale) - mean) / std``, 0 outside each image."""
    mean = torch.tensor(transform.mean, dtype=torch.float64)
    std = torch.tensor(transform.std, dtype=torch.float64)
    gain = (transform.scale / std).float().to(pixels.device)[:, None, None]  # one fused affine map:
    bias = (-mean / std).float().to(pixels.device)[:, None, None]  # within 1e-6 of the processors' three steps
    out = torch.empty(pixels.shape, dtype=torch.float32, device=pixels.device)
    for row, (height, width) in enumerate(sizes_hw):
        region = out[row, :, :height, :width]
        torch.addcmul(bias, region.copy_(pixels[row, :, :height, :width]), gain, out=region)
        out[row, :, height:].zero_()
        out[row, :, :height, width:].zero_()
    return out


def collate(
    resized: list[torch.Tensor], original_hw: list[tuple[int, int]], transform: ImageTransform,
    normalize_now: bool, pin_memory: bool = False,
) -> PixelBatch:
    """Pad ``(3, h, w) uint8`` images onto one canvas (the largest of their own canvases).

    ``normalize_now``: normalise here (CPU runtime: keeps the model thread free); otherwise stay
    uint8 for a cheap copy and normalisation on the GPU. ``pin_memory`` speeds up that copy.
    """
    if not resized:
        raise ValueError("collate needs at least one image")
    sizes = [(int(t.shape[1]), int(t.shape[2])) for t in resized]
    canvases = [transform.canvas(hw) for hw in sizes]
    height, width = max(c[0] for c in canvases), max(c[1] for c in canvases)
    batch = torch.zeros((len(resized), 3, height, width), dtype=torch.uint8)
    for row, image in enumerate(resized):
        batch[row, :, : image.shape[1], : image.shape[2]] = image
    if normalize_now:
        return PixelBatch(normalize(batch, sizes, transform), sizes, list(original_hw), transform, True)
    if pin_memory:
        batch = batch.pin_memory()
    return PixelBatch(batch, sizes, list(original_hw), transform, False)
