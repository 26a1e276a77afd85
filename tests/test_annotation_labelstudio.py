"""Label Studio task JSON: export, import back, idempotence, Label Studio's own export shape."""

from __future__ import annotations

import json

import pytest
from annotation_support import RUN_ID, make_labelled_workdir

from engine.annotations import Annotation, AnnotationStore, ImageSet
from engine.annotations.labelstudio import export_tasks, import_tasks, read_tasks_file
from engine.annotations.review import ReviewIndex


@pytest.fixture
def setup(sample_set, tmp_path):
    wd, rows = make_labelled_workdir(sample_set, tmp_path / "work")
    images = ImageSet.load(sample_set, wd)
    ids = images.ids()
    store = AnnotationStore(wd)
    store.append([Annotation(ids[0], "text", "alice", text="red disk", lead_time_s=2.0)])
    store.append([Annotation(ids[1], "skip", "alice")])
    store.append([Annotation(ids[2], "review", "bob", verdict="reject", comment="too big", run_id=RUN_ID)])
    return wd, images, store


def _summary(rows):
    return sorted((r["image_id"], r["kind"], r["annotator"], r["text"], r["verdict"], r["comment"]) for r in rows)


def test_export_then_import_round_trips(setup, sample_set, tmp_path):
    wd, images, store = setup
    index = ReviewIndex(wd)
    labels = {r["image_id"]: index.label(RUN_ID, r["image_id"]) for r in index.rows(RUN_ID)}
    tasks = export_tasks(images, store.rows(), labels)
    assert len(tasks) == 12 and tasks[0]["data"]["image"] == "/data/local-files/?d=sample_0000.jpg"
    box = tasks[0]["predictions"][0]["result"][0]["value"]
    assert 0 <= box["x"] <= 100 and 0 < box["width"] <= 100
    assert tasks[1]["annotations"][0]["was_cancelled"] is True
    file = tmp_path / "ls.json"
    file.write_text(json.dumps(tasks, default=str))
    found, problems = import_tasks(read_tasks_file(file), images)
    other = AnnotationStore(tmp_path / "other")
    other.append(found)
    assert problems == [] and _summary(other.rows()) == _summary(store.rows())
    assert other.append(found, skip_existing=True) is None


def test_import_reads_label_studio_native_exports(setup):
    _, images, _ = setup
    tasks = [
        {"id": 7, "data": {"image": "/data/upload/1/sample_0004.jpg"},
         "annotations": [{"id": 1, "completed_by": 3, "was_cancelled": False, "lead_time": 4.2,
                          "created_at": "2026-01-02T03:04:05.000Z",
                          "result": [{"from_name": "salient_object", "to_name": "image", "type": "textarea",
                                      "value": {"text": ["white vase"]}}]}]},
        {"id": 8, "data": {"image": "/data/upload/1/unknown.jpg"}, "annotations": []},
        "garbage",
    ]
    found, problems = import_tasks(tasks, images)
    assert [(a.image_id, a.text, a.annotator, a.source) for a in found] == [
        (images.by_name("sample_0004.jpg").image_id, "white vase", "label-studio-3", "label-studio")]
    assert len(problems) == 2 and "not in the set" in problems[0]
    again, _ = import_tasks(tasks, images)
    assert again[0].annotation_id == found[0].annotation_id  # stable ids: importing twice adds nothing


@pytest.mark.parametrize("content", ["{not json", "42"])
def test_bad_files_fail_clearly(tmp_path, setup, content):
    file = tmp_path / "bad.json"
    file.write_text(content)
    with pytest.raises(ValueError, match="bad.json|list of tasks"):
        import_tasks(read_tasks_file(file), setup[1])
