"""Label Studio task JSON: export our annotations (and pseudo-labels as predictions), import theirs.

Export: one task per image of the set, ``data.image`` a Label Studio local-files URL (prefix
configurable), texts as ``textarea`` results of ``salient_object``, skips as cancelled annotations,
review verdicts as ``choices`` of ``review`` (+ ``review_comment``), the pseudo-label's boxes as
``rectanglelabels`` predictions (percent coordinates). ``LABEL_CONFIG`` is the matching labelling
interface. Import reads the same shape (from Label Studio's own JSON export) back into the store;
ids are derived from the task and annotation, so importing a file twice adds nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.annotations.imageset import ImageSet
from engine.annotations.records import Annotation
from engine.storage import fingerprint

LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Header value="What is the salient object? (a short noun phrase, e.g. 'red car')"/>
  <TextArea name="salient_object" toName="image" maxSubmissions="1" editable="true"/>
  <Choices name="review" toName="image" choice="single" showInLine="true">
    <Choice value="accept"/>
    <Choice value="reject"/>
  </Choices>
  <TextArea name="review_comment" toName="image" editable="true"/>
  <RectangleLabels name="pseudo_box" toName="image"><Label value="salient"/></RectangleLabels>
</View>
"""
TEXT_FIELD, REVIEW_FIELD, COMMENT_FIELD = "salient_object", "review", "review_comment"
DEFAULT_URL_PREFIX = "/data/local-files/?d="


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z") if when else None


def _result(from_name: str, kind: str, value: dict) -> dict:
    return {"from_name": from_name, "to_name": "image", "type": kind, "value": value}


def _annotation_json(row: dict) -> dict:
    results = []
    if row["kind"] == "text":
        results.append(_result(TEXT_FIELD, "textarea", {"text": [row["text"]]}))
    if row["kind"] == "review":
        if row["verdict"] in ("accept", "reject"):
            results.append(_result(REVIEW_FIELD, "choices", {"choices": [row["verdict"]]}))
        if row["comment"]:
            results.append(_result(COMMENT_FIELD, "textarea", {"text": [row["comment"]]}))
    return {
        "result": results,
        "was_cancelled": row["kind"] == "skip",
        "lead_time": row["lead_time_s"],
        "created_at": _iso(row["created_at"]),
        "sodforge": {"annotation_id": row["annotation_id"], "annotator": row["annotator"],
                     "kind": row["kind"], "run_id": row["run_id"]},
    }


def _prediction_json(label: dict) -> dict:
    height, width = label.get("height") or 0, label.get("width") or 0
    results = []
    for box, score in zip(label.get("boxes_xyxy") or [], label.get("box_scores") or [], strict=False):
        if not height or not width:
            break
        x0, y0, x1, y1 = box
        value = {"x": 100 * x0 / width, "y": 100 * y0 / height, "width": 100 * (x1 - x0) / width,
                 "height": 100 * (y1 - y0) / height, "rotation": 0, "rectanglelabels": ["salient"]}
        results.append({**_result("pseudo_box", "rectanglelabels", value), "score": score,
                        "original_width": width, "original_height": height})
    if label.get("caption"):
        results.append(_result(TEXT_FIELD, "textarea", {"text": [label["caption"]]}))
    return {"model_version": label["run_id"], "score": label.get("quality_score"), "result": results}


def export_tasks(image_set: ImageSet, rows: list[dict], labels: dict[str, dict] | None = None,
                 url_prefix: str = DEFAULT_URL_PREFIX) -> list[dict]:
    """Label Studio tasks for every image of ``image_set`` (annotation ``rows``, optional ``labels`` by id)."""
    by_image: dict[str, list[dict]] = {}
    for row in rows:
        by_image.setdefault(row["image_id"], []).append(row)
    tasks = []
    for number, entry in enumerate(image_set.entries, start=1):
        task: dict[str, Any] = {
            "id": number,
            "data": {"image": url_prefix + entry.name, "image_id": entry.image_id, "name": entry.name},
            "annotations": [_annotation_json(r) for r in by_image.get(entry.image_id, [])],
        }
        label = (labels or {}).get(entry.image_id)
        if label is not None:
            task["predictions"] = [_prediction_json(label)]
        tasks.append(task)
    return tasks


def _parse_time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


def _annotator(annotation: dict) -> str:
    ours = (annotation.get("sodforge") or {}).get("annotator")
    if ours:
        return str(ours)
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return f"label-studio-{who}" if isinstance(who, int) else str(who or "label-studio")


def _resolve_image(task: dict, image_set: ImageSet) -> str | None:
    data = task.get("data") or {}
    if data.get("image_id") in image_set:
        return data["image_id"]
    url = str(data.get("image") or "")
    name = url.split("?d=", 1)[-1] if "?d=" in url else url.rsplit("/", 1)[-1]
    entry = image_set.by_name(name) if name else None
    return entry.image_id if entry else None


def _texts(results: list[dict], field: str) -> str | None:
    for result in results:
        if result.get("from_name") == field or (field == TEXT_FIELD and result.get("type") == "textarea"
                                                and result.get("from_name") != COMMENT_FIELD):
            text = (result.get("value") or {}).get("text") or []
            if text:
                return " ".join(str(t) for t in text)
    return None


def _to_annotation(task: dict, annotation: dict, image_id: str) -> Annotation:
    results = annotation.get("result") or []
    meta = annotation.get("sodforge") or {}
    fields = {
        "image_id": image_id, "annotator": _annotator(annotation), "created_at": _parse_time(annotation.get("created_at")),
        "lead_time_s": annotation.get("lead_time"), "source": "label-studio",
        "annotation_id": meta.get("annotation_id") or fingerprint(task.get("id"), image_id, annotation, length=16),
    }
    verdict = next((c for r in results if r.get("from_name") == REVIEW_FIELD
                    for c in (r.get("value") or {}).get("choices") or []), None)
    comment = _texts(results, COMMENT_FIELD)
    if annotation.get("was_cancelled"):
        return Annotation(kind="skip", **fields)
    if verdict or meta.get("kind") == "review":
        run_id = meta.get("run_id") or ((task.get("predictions") or [{}])[0].get("model_version"))
        return Annotation(kind="review", verdict=verdict or "comment", comment=comment, run_id=run_id, **fields)
    return Annotation(kind="text", text=_texts(results, TEXT_FIELD), **fields)


def import_tasks(tasks: Any, image_set: ImageSet) -> tuple[list[Annotation], list[str]]:
    """Annotations found in Label Studio ``tasks`` and a list of problems (one line each, skipped items)."""
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise ValueError(f"Label Studio JSON must be a list of tasks, got {type(tasks).__name__}")
    found, problems = [], []
    for index, task in enumerate(tasks):
        if not isinstance(task, dict):
            problems.append(f"task #{index}: not an object")
            continue
        image_id = _resolve_image(task, image_set)
        if image_id is None:
            problems.append(f"task {task.get('id', index)}: image {(task.get('data') or {}).get('image')!r} not in the set")
            continue
        for annotation in task.get("annotations") or []:
            try:
                found.append(_to_annotation(task, annotation, image_id))
            except (ValueError, TypeError, AttributeError) as err:
                problems.append(f"task {task.get('id', index)}: {err}")
    return found, problems


def read_tasks_file(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable Label Studio JSON file ({err})") from err
