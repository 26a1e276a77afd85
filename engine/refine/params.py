"""Typed parameters of unsupervised refinement (``refine`` section of ``params.yaml``).

Where the USOD paper and its public code (A2S-v3) disagree, the choice is a parameter whose default
follows the paper; the code's value is named in the comment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class PARParams:
    """Pixel-adaptive refiner (AFA's PAR): affinity propagation over colour neighbours."""

    dilations: tuple[int, ...] = (1, 2, 4, 8)
    iterations: int = 6
    temperature: float = 0.3  # w1: colour distance scale in units of the neighbourhood std
    pos_weight: float = 0.01  # w2: weight of the positional softmax added to the colour one

    def __post_init__(self) -> None:
        if not self.dilations or any(int(d) < 1 for d in self.dilations):
            raise ValueError(f"refine.par: dilations must be positive integers, got {self.dilations}")
        if self.iterations < 0 or self.temperature <= 0 or self.pos_weight < 0:
            raise ValueError("refine.par: iterations >= 0, temperature > 0, pos_weight >= 0 required")


@dataclass(frozen=True)
class SCEParams:
    """Stage 1: saliency cue extractor trained with (PCL-)saliency distilling."""

    epochs: int = 20
    lr: float = 0.1  # decoder; SGD momentum 0.9, wd 5e-4, linear decay to 0.2x (code)
    encoder_lr: float = 0.0  # the code keeps the MoCo-v2 encoder fixed for the whole stage
    pcl: bool = True  # False: plain saliency distilling (the paper's ablation)
    pcl_start: float = 0.2  # p = max(0, pcl_start - pcl_slope * epoch / epochs)
    pcl_slope: float = 0.6
    distil_power: float = 1.0  # paper: 1; the code raises |S - 0.5| to 2 ** (1 - epoch/epochs)
    consistency_weight: float = 1.0  # MSE between predictions at two input scales
    consistency_scale: float = 0.75
    corner_frac: float = 0.1  # corner patch side (fraction of the map) for the sign flip
    median: int = 5  # median filter (odd px at training size; 0 = off) on the cue labels

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.lr <= 0 or self.encoder_lr < 0:
            raise ValueError("refine.sce: epochs >= 1, lr > 0, encoder_lr >= 0 required")
        if not 0 < self.consistency_scale <= 2 or not 0 < self.corner_frac <= 0.5:
            raise ValueError("refine.sce: consistency_scale in (0, 2], corner_frac in (0, 0.5] required")


@dataclass(frozen=True)
class SPRParams:
    """Self-rectifying pseudo-label refinement: G_ref = l1 R_pri + l2 R_post + l3 G_pre."""

    enabled: bool = True  # on by default (the code's flag is off by default, which confused users)
    weights: tuple[float, float, float] = (0.2, 0.6, 0.2)  # prior, posterior, previous; code: 0.1/0.7/0.2
    start_epoch: int = 1  # 0-based; the code updates from its 2nd epoch on

    def __post_init__(self) -> None:
        if len(self.weights) != 3 or any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError(f"refine.spr: weights must be 3 non-negative numbers, got {self.weights}")
        if self.start_epoch < 0:
            raise ValueError("refine.spr: start_epoch must be >= 0")


@dataclass(frozen=True)
class DetectorParams:
    """Stage 2: two-stream saliency detector trained on the (self-rectifying) pseudo-labels."""

    epochs: int = 10
    lr: float = 0.005  # SGD momentum 0.9, wd 5e-4; encoder at 0.1x after the first epoch (code)
    encoder_lr_mult: float = 0.1
    iou_weight: float = 1.0  # IoU + multi-scale consistency is the paper's best (Table 8)
    bce_weight: float = 0.0
    consistency_weight: float = 1.0
    consistency_scale: float = 0.75
    second_stream: Literal["auto", "rgb", "depth", "thermal", "flow"] = "auto"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.lr <= 0:
            raise ValueError("refine.detector: epochs >= 1 and lr > 0 required")
        if self.iou_weight < 0 or self.bce_weight < 0 or self.iou_weight + self.bce_weight == 0:
            raise ValueError("refine.detector: need iou_weight and/or bce_weight > 0")


@dataclass(frozen=True)
class AdapterParams:
    """Adapter-tuning on a target set: F' = T(F) + T_a(F), only T_a trains."""

    hidden: int = 32
    epochs: int = 5
    lr: float = 0.005


@dataclass(frozen=True)
class UpdateParams:
    """How a refined soft label becomes the written mask: only confident change, at full resolution.

    The training-size label ``refined`` is compared with the source mask at the same size
    (``init``); only their difference is carried to full size and applied to the source mask, and
    only where it is large (``|refined - init| > 0.5 + margin``), so resampling alone never changes
    a mask. Changed regions are snapped to the image's edges by the pixel-adaptive refiner at full
    resolution (``guide``). A label whose change exceeds ``max_change`` of its pixels, or whose result
    is (nearly) empty or (nearly) the whole image, keeps its source mask (``refine_action``). A source
    mask that itself covers more than ``reject_source_above`` of the image is written as ``no_object``.
    """

    margin: float = 0.2  # confidence margin; 0 = any crossing of 0.5 changes the pixel
    guide: bool = True  # PAR on the full-size image inside changed regions (False: change only)
    guide_max_side: int = 1024  # PAR runs on the changed region's crop, downsized to this side at most
    max_change: float = 0.25  # per label: at most this fraction of the image's pixels may change
    min_area_frac: float = 0.001  # refined masks smaller than this: degenerate, keep the source
    max_area_frac: float = 0.95  # refined masks larger than this: degenerate, keep the source
    reject_source_above: float = 0.999  # a kept/copied source mask covering more: written as no_object

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 0.5:
            raise ValueError(f"refine.update: margin must be in [0, 0.5), got {self.margin}")
        if not 0 < self.max_change <= 1 or self.guide_max_side < 32:
            raise ValueError("refine.update: max_change in (0, 1] and guide_max_side >= 32 required")
        if not 0 <= self.min_area_frac < self.max_area_frac <= 1 or not 0 < self.reject_source_above <= 1:
            raise ValueError("refine.update: 0 <= min_area_frac < max_area_frac <= 1, reject_source_above in (0, 1] required")


@dataclass(frozen=True)
class GateParams:
    """The self-check that decides whether refined labels may replace their source (contract 10).

    A held-out split of the images (``holdout_fraction``, hashed from the image id) never trains the
    detector. On it, the trained detector + the SPR rule + :class:`UpdateParams` refine (a) corrupted
    copies of the source labels (:mod:`engine.refine.corruptions`, ``probe_kinds``) and (b) the source
    labels themselves. Refined labels replace the source only when (a) removes at least
    ``min_repair`` of the corruption overall and ``min_kind_repair`` for every kind, and ends no
    farther from the source than ``min_repair_to_source`` allows, and (b) changes at most
    ``max_clean_drift`` of the pixels (the most labels that were right can get worse).
    Otherwise every label keeps its source mask and the run says why (:mod:`engine.refine.gate`).
    ``enabled: false`` skips the check: refined labels are then written but marked unverified, and
    data-engine does not train on them.
    """

    enabled: bool = True
    holdout_fraction: float = 0.2
    holdout_min: int = 8  # fewer held-out images than this: the check cannot be made, keep the source
    holdout_max: int = 500  # cap (the probe costs about one refinement per held-out image and kind)
    probe_kinds: tuple[str, ...] = ("box", "shifted_box", "missing_part", "extra_region", "false_blobs",
                                    "dilate", "erode", "holes")
    min_repair: float = 0.3  # corrupted copies: at least 30% of the corruption removed ...
    min_kind_repair: float = 0.0  # ... and no kind made worse
    min_repair_to_source: float = 0.0  # refined corrupted copies end no farther from the source than they began
    max_clean_drift: float = 0.003  # source labels: at most 0.3% of their pixels changed on average

    def __post_init__(self) -> None:
        if not 0 < self.holdout_fraction < 1 or self.holdout_min < 1 or self.holdout_max < self.holdout_min:
            raise ValueError("refine.gate: holdout_fraction in (0, 1), 1 <= holdout_min <= holdout_max required")
        if not self.probe_kinds:
            raise ValueError("refine.gate: probe_kinds must name at least one corruption")
        if not 0 <= self.min_repair <= 1 or max(self.min_kind_repair, self.min_repair_to_source) > 1:
            raise ValueError("refine.gate: min_repair in [0, 1], min_kind_repair and min_repair_to_source <= 1 required")
        if not 0 <= self.max_clean_drift <= 1:
            raise ValueError("refine.gate: max_clean_drift in [0, 1] required")


@dataclass(frozen=True)
class RefineParams:
    """Everything the ``refine-labels`` and ``transfer`` flows need."""

    source_run: str | None = None  # label run to refine; None = the newest build-pseudo-labels run
    init: Literal["source", "cues"] = "source"  # start SPR from the source masks or from the SCE cues
    backbone: str = "resnet50"  # engine.backbones name; "tiny" for tests and the CPU demo
    checkpoint: str | None = None  # MoCo-v2 / torchvision ResNet-50 weights (None: random init)
    size: int = 320  # square training side, px
    batch_size: int = 8
    num_workers: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch CPU threads (1 on shared CPUs: oversubscription is ~20x slower)
    seed: int = 0
    threshold: float = 0.5  # soft label -> binary mask written to the shards
    par: PARParams = field(default_factory=PARParams)
    sce: SCEParams = field(default_factory=SCEParams)
    spr: SPRParams = field(default_factory=SPRParams)
    detector: DetectorParams = field(default_factory=DetectorParams)
    adapter: AdapterParams = field(default_factory=AdapterParams)
    update: UpdateParams = field(default_factory=UpdateParams)
    gate: GateParams = field(default_factory=GateParams)

    PERFORMANCE_KEYS = ("batch_size", "num_workers", "device", "threads")

    def __post_init__(self) -> None:
        if self.init not in ("source", "cues"):
            raise ValueError(f"refine: init must be 'source' or 'cues', got {self.init!r}")
        if self.size < 32 or self.batch_size < 1 or not 0 < self.threshold < 1:
            raise ValueError("refine: size >= 32, batch_size >= 1, threshold in (0, 1) required")
        from engine.refine.corruptions import KINDS

        unknown = sorted(set(self.gate.probe_kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"refine.gate.probe_kinds: unknown corruptions {unknown}; known: {list(KINDS)}")
