"""A SIMULATED annotator for the generated sample set (no person involved).

The sample set's ``meta.json`` records each image's shape and colour; the simulated annotator
"writes" ``"<colour> <shape>"`` (e.g. ``"red star"``) for every image. It is deterministic and
exists only so the fine-tuning stage can run end to end on the sample set; real projects use the
texts people type in the annotation UI (``sodforge annotate``).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.images.manifest import images_root

SIMULATED_ANNOTATOR = "simulated"


def simulated_texts(set_dir: str | Path) -> list[dict]:
    """``[{"image": relative path, "text": "red star", "annotator": "simulated"}, ...]`` from ``meta.json``."""
    set_dir = Path(set_dir)
    meta_path = set_dir / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
        items = meta["items"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{meta_path}: not a sample-set meta file with 'items' ({err})") from err
    root = images_root(set_dir)
    rows = []
    for item in items:
        matches = sorted(root.glob(f"{item['stem']}.*"))
        if not matches:
            raise ValueError(f"{meta_path}: image {item['stem']!r} not found under {root}")
        rows.append({"image": matches[0].relative_to(set_dir).as_posix(), "text": f"{item['colour']} {item['shape']}",
                     "annotator": SIMULATED_ANNOTATOR})
    return rows


def write_texts_jsonl(rows: list[dict], out: str | Path, note: str | None = None) -> Path:
    """Write ``rows`` as JSON lines (first line a ``{"_note": ...}`` comment when ``note`` is given)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ([json.dumps({"_note": note})] if note else []) + [json.dumps(r, sort_keys=True) for r in rows]
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)
    return out
