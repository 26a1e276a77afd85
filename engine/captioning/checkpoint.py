"""Which captioner labelling uses: the fine-tuned checkpoint when it exists and fits the profile.

Kept free of heavy imports: ``engine.params`` calls it while resolving model specs.
"""

from __future__ import annotations

import json
from pathlib import Path

INFO_FILE = "finetune.json"


def finetuned_source(checkpoint: str | Path | None, profile_captioner: str) -> str | None:
    """``checkpoint`` as a source string if it holds a finished fine-tune of ``profile_captioner``.

    A fine-tune of another base (e.g. the tiny model while labelling with ``large``) is ignored,
    so switching profiles never mixes a tiny captioner into a real run.
    """
    if not checkpoint:
        return None
    directory = Path(checkpoint).expanduser()
    try:
        info = json.loads((directory / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not info.get("complete") or not (directory / "config.json").is_file():
        return None
    return str(directory) if info.get("base") == profile_captioner else None
