"""Parameters of evaluation (``params.yaml`` section ``evaluate``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MissingPolicy = Literal["error", "empty", "skip"]
MISSING_POLICIES: tuple[str, ...] = ("error", "empty", "skip")


@dataclass(frozen=True)
class EvaluateParams:
    """How evaluation treats gaps and what it draws.

    ``missing``: what a ground-truth image without a usable prediction (no file for its stem, or an
    unreadable file) does: ``error`` stops before scoring (missing files) or at the file (unreadable),
    naming them; ``empty`` scores it as an all-zero map and warns per image; ``skip`` leaves it out
    and warns per image. Counts and names always land in the report's ``details.json``.
    ``worst``: overlays drawn for the N images with the highest MAE per dataset (0 = none).
    ``overlay_threshold``: the min-max normalised prediction is foreground where ``>= threshold``.
    """

    missing: MissingPolicy = "error"
    worst: int = 8
    overlay_threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.missing not in MISSING_POLICIES:
            raise ValueError(f"evaluate params: missing must be one of {MISSING_POLICIES}, got {self.missing!r}")
        if self.worst < 0:
            raise ValueError(f"evaluate params: worst must be >= 0, got {self.worst}")
        if not 0.0 <= self.overlay_threshold <= 1.0:
            raise ValueError(f"evaluate params: overlay_threshold must be in [0, 1], got {self.overlay_threshold}")
