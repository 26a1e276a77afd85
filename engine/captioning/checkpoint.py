"""Which captioner labelling uses: the profile's, or a fine-tuned checkpoint it is told to use.

Labelling never picks a checkpoint up by itself: it uses one only when told, by
``models.captioner_checkpoint`` in params.yaml or ``sodforge label --captioner PATH``, and it says
which captioner it uses (:class:`CaptionerChoice.describe`, printed in every run summary).

Kept free of heavy imports: ``engine.params`` calls it while resolving model specs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

INFO_FILE = "finetune.json"


def checkpoint_problem(checkpoint: str | Path, profile_captioner: str) -> str | None:
    """Why ``checkpoint`` cannot replace ``profile_captioner`` (None when it can).

    It must be a finished fine-tune (``finetune.json`` says ``complete``) of that same captioner,
    so switching profiles never mixes e.g. a tiny captioner into a real run.
    """
    directory = Path(checkpoint).expanduser()
    if not directory.is_dir():
        return f"{directory}: no such checkpoint directory"
    try:
        info = json.loads((directory / INFO_FILE).read_text())
    except (OSError, ValueError):
        return f"{directory}: not a fine-tuned captioner (no readable {INFO_FILE})"
    if not info.get("complete") or not (directory / "config.json").is_file():
        return f"{directory}: fine-tuning has not finished"
    if info.get("base") != profile_captioner:
        return f"{directory}: fine-tuned from {info.get('base')!r}, but the profile's captioner is {profile_captioner!r}"
    return None


def finetuned_source(checkpoint: str | Path | None, profile_captioner: str) -> str | None:
    """``checkpoint`` as a source string if it holds a finished fine-tune of ``profile_captioner``."""
    if not checkpoint or checkpoint_problem(checkpoint, profile_captioner) is not None:
        return None
    return str(Path(checkpoint).expanduser())


@dataclass(frozen=True)
class CaptionerChoice:
    """The captioner a labelling run uses, and why.

    ``source`` is what gets loaded; ``checkpoint`` the fine-tuned checkpoint asked for (None: none
    asked for); ``problem`` why that checkpoint is not used (None when it is).
    """

    source: str
    profile_captioner: str
    checkpoint: str | None = None
    problem: str | None = None

    @property
    def finetuned(self) -> bool:
        return self.checkpoint is not None and self.problem is None

    def describe(self) -> str:
        """One line for logs and run summaries."""
        if self.finetuned:
            return f"fine-tuned checkpoint {self.source} (tuned from {self.profile_captioner})"
        if self.checkpoint is None:
            return f"{self.source} (the profile's captioner; no fine-tuned checkpoint asked for)"
        return f"{self.source} (the profile's captioner; checkpoint NOT used: {self.problem})"


def choose_captioner(profile_captioner: str, checkpoint: str | Path | None, strict: bool = False) -> CaptionerChoice:
    """The captioner to label with: ``checkpoint`` when usable, else the profile's.

    Args:
        profile_captioner: the model profile's captioner source.
        checkpoint: a fine-tuned checkpoint directory asked for, or None.
        strict: raise instead of falling back when ``checkpoint`` cannot be used (an explicit
            ``--captioner`` must never be ignored).

    Raises:
        ValueError: ``strict`` and the checkpoint is unusable (the message says why).
    """
    if not checkpoint:
        return CaptionerChoice(profile_captioner, profile_captioner)
    absolute = str(Path(checkpoint).expanduser().resolve())
    problem = checkpoint_problem(absolute, profile_captioner)
    if problem is not None and strict:
        raise ValueError(f"captioner checkpoint {checkpoint}: {problem}")
    return CaptionerChoice(absolute if problem is None else profile_captioner, profile_captioner, absolute, problem)
