"""What the annotation app knows: the image set, the store, the queues. No web framework here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.annotations import (
    Annotation,
    AnnotationStore,
    ImageSet,
    annotator_agreement,
    counts,
    human_texts,
    latest_answers,
    latest_reviews,
    read_rounds,
    relabel_queue,
)
from engine.annotations.review import ReviewIndex, list_runs
from engine.catalog import Workdir


@dataclass(frozen=True)
class UISettings:
    """``images``: the only images the app serves; ``workdir``: where annotations and the catalog live."""

    images: Path
    workdir: Path
    annotator: str = "annotator"
    max_body_bytes: int = 64 * 1024
    review_limit: int = 2000
    refresh_catalog: bool = True
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")


class AppState:
    """Loaded once per server: the image set is scanned (hashing only files the manifest lacks)."""

    def __init__(self, settings: UISettings):
        self.settings = settings
        self.workdir = Workdir.at(settings.workdir)
        self.images = ImageSet.load(settings.images, self.workdir)
        self.store = AnnotationStore(self.workdir, refresh_catalog=settings.refresh_catalog)
        self.reviews = ReviewIndex(self.workdir)

    def queue_ids(self) -> tuple[list[str], set[str]]:
        """Image ids to annotate, in order, and the subset queued for relabelling (which come first).

        The queue is the selected rounds (``sodforge annotations select``), or the whole set when no
        round was selected yet.
        """
        rows = self.store.rows()
        relabel = [i for i in relabel_queue(rows) if i in self.images]
        rounds = [r["image_id"] for r in read_rounds(self.workdir) if r["image_id"] in self.images]
        base = rounds or self.images.ids()
        ordered = list(dict.fromkeys([*relabel, *base]))
        return ordered, set(relabel)

    def latest_run(self) -> str | None:
        runs = list_runs(self.workdir)
        return runs[0]["run_id"] if runs else None

    def queue(self, annotator: str) -> dict:
        ids, relabel = self.queue_ids()
        answers = latest_answers(self.store.rows(), annotator)
        run_id = self.latest_run()
        labelled = {r["image_id"]: r for r in self.reviews.rows(run_id)} if run_id else {}
        items = []
        for image_id in ids:
            entry = self.images.get(image_id)
            answer = answers.get((image_id, annotator))
            label = labelled.get(image_id)
            items.append({
                "image_id": image_id,
                "name": entry.name,
                "state": "todo" if answer is None else ("skipped" if answer["kind"] == "skip" else "done"),
                "text": answer["text"] if answer else None,
                "relabel": image_id in relabel,
                "label": None if label is None else {
                    "run_id": run_id, "status": label["status"], "caption": label["caption"],
                    "phrase": label["phrase"], "has_mask": label["status"] == "ok",
                },
            })
        done = sum(1 for i in items if i["state"] == "done")
        skipped = sum(1 for i in items if i["state"] == "skipped")
        return {"annotator": annotator, "items": items,
                "progress": {"total": len(items), "done": done, "skipped": skipped, "todo": len(items) - done - skipped}}

    def review_queue(self, run_id: str, annotator: str, limit: int) -> dict:
        rows = self.reviews.rows(run_id)[:limit]
        verdicts = latest_reviews(self.store.rows(), run_id)
        items = []
        for rank, row in enumerate(rows):
            if row["image_id"] not in self.images:
                continue
            review = verdicts.get((row["image_id"], run_id), {})
            items.append({
                "rank": rank, "image_id": row["image_id"], "name": self.images.get(row["image_id"]).name,
                "status": row["status"], "error": row["error"], "caption": row["caption"], "phrase": row["phrase"],
                "category": row["category"], "quality_score": row["quality_score"],
                "verdict": review.get("verdict"), "comment": review.get("comment"), "reviewed_by": review.get("annotator"),
            })
        reviewed = sum(1 for i in items if i["verdict"])
        return {"run_id": run_id, "annotator": annotator, "items": items,
                "progress": {"total": len(items), "reviewed": reviewed, "todo": len(items) - reviewed}}

    def submit(self, annotation: Annotation) -> dict:
        if annotation.image_id not in self.images:
            raise KeyError(f"image {annotation.image_id} is not in the configured set")
        if annotation.kind == "review" and self.reviews.find(annotation.run_id, annotation.image_id) is None:
            raise KeyError(f"run {annotation.run_id} has no label for image {annotation.image_id}")
        path = self.store.append([annotation])
        return {"annotation_id": annotation.annotation_id, "created_at": annotation.created_at.isoformat(),
                "stored": path.name if path else None}

    def stats(self) -> dict:
        rows = self.store.rows()
        return {"images": len(self.images), **counts(rows), "agreement": annotator_agreement(human_texts(rows)),
                "relabel_queue": len([i for i in relabel_queue(rows) if i in self.images])}
