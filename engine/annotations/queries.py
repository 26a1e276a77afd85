"""Derived views of annotation rows: latest answer per annotator, human texts, reviews, relabel queue.

Rows are dicts with the columns of ``ANNOTATION_SCHEMA``, oldest first (as ``AnnotationStore.rows``
returns them). Later rows win: resubmitting an image replaces that annotator's earlier answer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable


def latest_answers(rows: Iterable[dict], annotator: str | None = None) -> dict[tuple[str, str], dict]:
    """``(image_id, annotator) -> row`` of the latest text or skip (optionally of one annotator)."""
    latest: dict[tuple[str, str], dict] = {}
    for row in rows:
        if row["kind"] in ("text", "skip") and (annotator is None or row["annotator"] == annotator):
            latest[(row["image_id"], row["annotator"])] = row
    return latest


def human_texts(rows: Iterable[dict]) -> dict[str, list[tuple[str, str]]]:
    """``image_id -> [(annotator, text), ...]``: each annotator's latest text (skips excluded)."""
    texts: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for (image_id, annotator), row in sorted(latest_answers(rows).items()):
        if row["kind"] == "text" and row["text"]:
            texts[image_id].append((annotator, row["text"]))
    return dict(texts)


def latest_reviews(rows: Iterable[dict], run_id: str | None = None) -> dict[tuple[str, str], dict]:
    """``(image_id, run_id) -> {"verdict", "comment", "annotator", "created_at"}``.

    ``verdict`` is the latest accept/reject (None if only comments), ``comment`` the latest comment.
    """
    out: dict[tuple[str, str], dict] = {}
    for row in rows:
        if row["kind"] != "review" or (run_id is not None and row["run_id"] != run_id):
            continue
        entry = out.setdefault((row["image_id"], row["run_id"]), {"verdict": None, "comment": None, "annotator": None})
        if row["verdict"] in ("accept", "reject"):
            entry.update(verdict=row["verdict"], annotator=row["annotator"], created_at=row["created_at"])
        if row["comment"]:
            entry["comment"] = row["comment"]
    return out


def relabel_queue(rows: Iterable[dict]) -> list[str]:
    """Image ids whose latest review verdict (any run) is ``reject`` and that got no text since.

    These go to the front of the annotation queue: a person names the salient object, and the
    next labelling run (or the fine-tuned captioner) can use that text.
    """
    rows = list(rows)
    rejected_at: dict[str, object] = {}
    for row in rows:
        if row["kind"] == "review" and row["verdict"] in ("accept", "reject"):
            if row["verdict"] == "reject":
                rejected_at[row["image_id"]] = row["created_at"]
            else:
                rejected_at.pop(row["image_id"], None)
    answered = defaultdict(list)
    for row in rows:
        if row["kind"] == "text":
            answered[row["image_id"]].append(row["created_at"])
    return [
        image_id
        for image_id, when in sorted(rejected_at.items(), key=lambda kv: kv[1])
        if not any(t >= when for t in answered.get(image_id, []))
    ]


def counts(rows: Iterable[dict]) -> dict[str, int]:
    """Numbers of rows per kind plus distinct annotators and annotated images."""
    rows = list(rows)
    kinds = {kind: sum(1 for r in rows if r["kind"] == kind) for kind in ("text", "skip", "review")}
    return {
        **kinds,
        "annotators": len({r["annotator"] for r in rows}),
        "images_with_text": len({r["image_id"] for r in rows if r["kind"] == "text"}),
    }
