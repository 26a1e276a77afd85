"""The refinement gate: does refinement make labels better, shown without ground truth?

Contract 10 (DESIGN.md): a refinement run either shows that its refined labels are not worse than
their source, and says how it knows, or keeps the source labels and says so. This module is the
"shows" part. It needs no true masks; it uses only the source labels and images the detector never
trained on:

1. **Held-out split.** :func:`holdout_ids` sets aside a stable fraction of the images (hash of seed
   and image id). The detector trains with SPR on the others only.
2. **Probe.** For every held-out image, the trained detector's prediction ``P`` drives the update
   every written label gets (the SPR rule ``G <- l1 PAR(P) + l2 P + l3 G``, repeated for as many
   rounds as SPR ran in training) followed by the full-resolution, confidence-gated write-back
   (:func:`engine.refine.update.update_label`). It is applied to
   (a) a corrupted copy of the source label (:mod:`engine.refine.corruptions`: boxes, missing parts,
       extra regions, loose and tight outlines, holes; one kind per image, cycled), and
   (b) the source label itself.
3. **Decision** (:func:`decide`).
   - *Repair*: how much of each corruption refinement removes, measured against where refinement
     takes the uncorrupted label: ``repair = 1 - MAE(refine(C), refine(S)) / MAE(C, S)``. Measuring
     against ``refine(S)`` rather than ``S`` keeps the source's own errors from hiding a repair (a
     perfect refiner on noisy labels takes both ``C`` and ``S`` to the truth: repair 1). It must be
     at least ``min_repair`` overall and at least ``min_kind_repair`` for every corruption kind.
     A detector that learned nothing fails it when its changes depend on the label (they remove
     only as much of a corruption as they touch by chance); one that ignores the label maps ``C``
     and ``S`` alike and would pass, which the next two checks catch.
   - *Repair toward the source*: ``1 - MAE(refine(C), S) / MAE(C, S)`` must be at least
     ``min_repair_to_source``: a refined corrupted copy must not end farther from the source than
     it began (a refiner that ignores the labels ends wherever its predictions are).
   - *Clean drift*: ``MAE(refine(S), S)``, how much refinement changes the source labels themselves,
     at most ``max_clean_drift``.
   Refined labels replace the source only when all hold. Otherwise every label keeps its source
   mask, and the summary, log and artifact say which condition failed, with the figures.

What this shows, and what it cannot: MAE is a per-pixel L1 distance, so a label that moves by ``d``
gets worse by at most ``d`` against any truth; the clean drift is therefore the most the run can
have damaged labels that were already right (the guarantee: refined MAE <= source MAE +
``max_clean_drift``, on held-out images). The repair check shows that the changes it makes are
aimed at errors rather than noise. Without ground truth no check can tell a correction of the
source's own errors from damage to a right label (both move the label by the same amount), so the
drift cap has to be paid by corrections too: with the default 0.3% the run may fix the gross
failures of a few labels, not rewrite a whole noisy set. Raise ``max_clean_drift`` when the source is
known to be noisy; the summary then states the larger worst case. Every image's written label comes
from the same operator (the final detector's prediction, the SPR rule, the write-back); held-out
images differ only in that the detector never saw them, which if anything makes the check harder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.refine.corruptions import corrupt_mask
from engine.refine.data import resize_mask
from engine.refine.params import GateParams, PARParams, UpdateParams
from engine.refine.spr import spr_update
from engine.refine.update import update_label


def holdout_ids(image_ids: Iterable[str], fraction: float, seed: int = 0, cap: int | None = None) -> set[str]:
    """A stable ``fraction`` of ``image_ids`` (by hash of seed and id), at most ``cap`` of them."""
    ranked = sorted((int.from_bytes(hashlib.blake2b(f"holdout:{seed}:{i}".encode(), digest_size=8).digest(), "big") / 2**64, i)
                    for i in set(image_ids))
    chosen = [i for value, i in ranked if value < fraction]
    return set(chosen[:cap] if cap is not None else chosen)


def spr_rounds(r_pri: torch.Tensor, probs: torch.Tensor, label: torch.Tensor, weights: tuple[float, float, float],
               rounds: int) -> torch.Tensor:
    """The SPR rule applied ``rounds`` times with a fixed prediction: all ``(B, 1, S, S)`` in [0, 1]."""
    for _ in range(rounds):
        label = spr_update(r_pri, probs, label, weights)
    return label


@dataclass(frozen=True)
class ProbeSample:
    """One held-out image: ``source`` ``(H, W) bool``; ``image`` ``(H, W, 3) uint8`` (None: no guidance);
    ``probs`` / ``r_pri`` ``(S, S)`` float in [0, 1] (the detector's prediction and its PAR); ``start``
    ``(S, S)`` float or None: the SPR starting label when it is not the label itself (``init: cues``)."""

    source: np.ndarray
    image: np.ndarray | None
    probs: np.ndarray
    r_pri: np.ndarray
    start: np.ndarray | None = None


@dataclass
class ProbeResult:
    """Per-image probe figures (fractions of pixels), collected by :func:`probe_sample`."""

    kinds: list[str] = field(default_factory=list)
    corrupted_before: list[float] = field(default_factory=list)  # MAE(C, S)
    corrupted_after: list[float] = field(default_factory=list)  # MAE(refine(C), refine(S))
    corrupted_vs_source: list[float] = field(default_factory=list)  # MAE(refine(C), S)
    clean_drift: list[float] = field(default_factory=list)  # MAE(refine(S), S)
    agreement: list[float] = field(default_factory=list)  # IoU(prediction > 0.5, source) at training size


def refine_one(label: np.ndarray, sample: ProbeSample, spr_weights: tuple[float, float, float], rounds: int,
               update: UpdateParams, par: PARParams) -> tuple[np.ndarray, np.ndarray]:
    """Refine one full-size bool ``label`` as a run refines its labels; returns (soft (S, S), written mask)."""
    size = sample.probs.shape[-1]
    init = resize_mask(label, size)[0].numpy()
    start = torch.from_numpy(sample.start if sample.start is not None else init)[None, None]
    soft = spr_rounds(torch.from_numpy(sample.r_pri)[None, None], torch.from_numpy(sample.probs)[None, None],
                      start.float(), spr_weights, rounds)[0, 0].numpy()
    soft = np.round(soft * 255.0) / 255.0  # as stored in the uint8 label bank
    return soft, update_label(label, init, soft, sample.image, update, par).mask


def probe_sample(sample: ProbeSample, index: int, rng: np.random.Generator, params: GateParams,
                 spr_weights: tuple[float, float, float], rounds: int, update: UpdateParams, par: PARParams,
                 result: ProbeResult) -> np.ndarray:
    """Probe one held-out image (one corruption kind, cycled by ``index``); returns its clean soft label."""
    source = sample.source
    kind = params.probe_kinds[index % len(params.probe_kinds)]
    corrupted, _ = corrupt_mask(source, rng, kind=kind)
    _, repaired = refine_one(corrupted, sample, spr_weights, rounds, update, par)
    soft, kept = refine_one(source, sample, spr_weights, rounds, update, par)
    result.kinds.append(kind)
    result.corrupted_before.append(float(np.mean(corrupted != source)))
    result.corrupted_after.append(float(np.mean(repaired != kept)))
    result.corrupted_vs_source.append(float(np.mean(repaired != source)))
    result.clean_drift.append(float(np.mean(kept != source)))
    small = resize_mask(source, sample.probs.shape[-1])[0].numpy() > 0.5
    predicted = sample.probs > 0.5
    union = np.count_nonzero(small | predicted)
    result.agreement.append(float(np.count_nonzero(small & predicted)) / union if union else 1.0)
    return soft


def summarize_probe(result: ProbeResult) -> dict:
    """Means of a probe, overall and per corruption kind (rounded to 1e-4).

    ``repair`` = ``1 - corrupted_after / corrupted_before`` and ``repair_to_source`` = ``1 -
    corrupted_mae_to_source / corrupted_before`` (see the module docstring).
    """
    def mean(values: list[float]) -> float | None:
        return round(float(np.mean(values)), 4) if values else None

    def repair(before: float | None, after: float | None) -> float | None:
        return round(1.0 - after / before, 4) if before else None

    per_kind = {}
    for kind in dict.fromkeys(result.kinds):
        picks = [i for i, k in enumerate(result.kinds) if k == kind]
        before, after = mean([result.corrupted_before[i] for i in picks]), mean([result.corrupted_after[i] for i in picks])
        per_kind[kind] = {"images": len(picks), "before": before, "after": after, "repair": repair(before, after)}
    before, after, to_source = mean(result.corrupted_before), mean(result.corrupted_after), mean(result.corrupted_vs_source)
    return {"images": len(result.kinds), "corrupted_mae_before": before, "corrupted_mae_after": after,
            "repair": repair(before, after), "corrupted_mae_to_source": to_source,
            "repair_to_source": repair(before, to_source),
            "clean_drift": mean(result.clean_drift), "detector_agreement_iou": mean(result.agreement),
            "per_kind": per_kind}


def decide(probe: dict, params: GateParams) -> dict:
    """The gate's decision from a :func:`summarize_probe` summary.

    Returns ``{"passed": bool, "decision": "refined" | "kept_source", "reason": str, "checks": {...}}``;
    ``reason`` names every failed condition with its measured value and threshold.
    """
    images = probe["images"]
    if images < params.holdout_min:
        reason = (f"only {images} held-out images with a source mask (holdout_min {params.holdout_min}): "
                  "refinement cannot be checked, so the source labels are kept")
        return {"passed": False, "decision": "kept_source", "reason": reason, "checks": {}}
    repair, drift = probe["repair"] or 0.0, probe["clean_drift"] or 0.0
    toward = probe["repair_to_source"] or 0.0
    weak = {k: v for k, v in probe["per_kind"].items() if (v["repair"] or 0.0) < params.min_kind_repair}
    checks = {
        "repair": {"value": repair, "min": params.min_repair, "ok": repair >= params.min_repair},
        "kind_repair": {"failed": sorted(weak), "min": params.min_kind_repair, "ok": not weak},
        "repair_to_source": {"value": toward, "min": params.min_repair_to_source,
                             "ok": toward >= params.min_repair_to_source},
        "clean_drift": {"value": drift, "max": params.max_clean_drift, "ok": drift <= params.max_clean_drift},
    }
    failed = []
    if not checks["repair"]["ok"]:
        failed.append(f"it removed {repair:.1%} of realistic corruptions of held-out labels (need >= {params.min_repair:.0%})")
    if weak:
        failed.append("it did not repair " + ", ".join(f"{k} ({v['repair'] or 0.0:+.1%})" for k, v in sorted(weak.items()))
                      + f" (need >= {params.min_kind_repair:.0%} each)")
    if not checks["repair_to_source"]["ok"]:
        failed.append(f"refined corrupted labels ended {-toward:.1%} farther from their source than they began "
                      f"(need >= {params.min_repair_to_source:+.0%})")
    if not checks["clean_drift"]["ok"]:
        failed.append(f"it changed {drift:.2%} of the pixels of uncorrupted held-out labels "
                      f"(max_clean_drift {params.max_clean_drift:.2%})")
    if failed:
        return {"passed": False, "decision": "kept_source", "reason": "source labels kept: " + "; ".join(failed),
                "checks": checks}
    reason = (f"checked on {images} held-out images the detector never trained on: refinement removed "
              f"{repair:.1%} of realistic corruptions of their labels (MAE {probe['corrupted_mae_before']:.4f} -> "
              f"{probe['corrupted_mae_after']:.4f}; every kind >= {params.min_kind_repair:.0%}) and changed the "
              f"uncorrupted labels by {drift:.2%} of their pixels, so labels that were right got at most "
              f"{drift:.2%} (MAE {drift:.4f}) worse")
    return {"passed": True, "decision": "refined", "reason": reason, "checks": checks}
