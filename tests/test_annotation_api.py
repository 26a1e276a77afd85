"""The annotation app's HTTP API: every route, good and bad input (FastAPI TestClient)."""

from __future__ import annotations

import io

import pytest
from annotation_support import RUN_ID, make_labelled_workdir
from fastapi.testclient import TestClient
from PIL import Image

from annotation_ui import UISettings, create_app

UNKNOWN_ID = "0" * 32


@pytest.fixture(scope="module")
def labelled(sample_set, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("api-work")
    wd, rows = make_labelled_workdir(sample_set, workdir)
    return wd, rows


@pytest.fixture
def client(labelled, sample_set, tmp_path):
    wd, _ = labelled
    # a fresh annotation store per test: copy nothing, point the workdir's annotations elsewhere
    import shutil

    work = tmp_path / "work"
    shutil.copytree(wd.root, work)
    app = create_app(UISettings(images=sample_set, workdir=work, annotator="alice", max_body_bytes=4096))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
def ids(labelled):
    return [row["image_id"] for row in labelled[1]]


def test_page_and_static_files_with_security_headers(client):
    page = client.get("/")
    assert page.status_code == 200 and "What is the salient object?" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


@pytest.mark.parametrize("path", ["/static/../app.py", "/static/%2e%2e/app.py", "/static/nope.js"])
def test_static_files_never_leave_the_static_folder(client, path):
    assert client.get(path).status_code == 404


def test_config_and_runs(client):
    config = client.get("/api/config").json()
    assert config["annotator"] == "alice" and config["images"] == 12 and config["latest_run"] == RUN_ID
    assert [r["run_id"] for r in client.get("/api/runs").json()["runs"]] == [RUN_ID]


def test_queue_lists_every_image_with_its_pseudo_label(client, ids):
    data = client.get("/api/queue", params={"annotator": "alice"}).json()
    assert [i["image_id"] for i in data["items"]] == ids
    assert data["progress"] == {"total": 12, "done": 0, "skipped": 0, "todo": 12}
    assert data["items"][0]["label"]["caption"] == "a <b>photo</b> of object 0"


def test_text_then_skip_then_resubmit(client, ids):
    ok = client.post("/api/annotations", json={"image_id": ids[0], "annotator": "alice", "text": " red  disk ", "lead_time_s": 3.5})
    assert ok.status_code == 201 and len(ok.json()["annotation_id"]) == 32
    assert client.post("/api/annotations", json={"image_id": ids[1], "annotator": "alice", "skip": True}).status_code == 201
    client.post("/api/annotations", json={"image_id": ids[0], "annotator": "alice", "text": "white disk"})
    items = client.get("/api/queue", params={"annotator": "alice"}).json()["items"]
    assert (items[0]["state"], items[0]["text"]) == ("done", "white disk")
    assert items[1]["state"] == "skipped"
    assert client.get("/api/queue", params={"annotator": "bob"}).json()["progress"]["done"] == 0


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"annotator": "alice", "text": "x"}, 422, "image_id"),
        ({"image_id": "../../etc/passwd", "annotator": "alice", "text": "x"}, 422, "image_id"),
        ({"image_id": UNKNOWN_ID, "annotator": "alice", "text": "x"}, 404, "not in the configured set"),
        ({"image_id": "IDX", "annotator": "alice", "text": ""}, 400, "text is empty"),
        ({"image_id": "IDX", "annotator": "alice", "text": "x" * 501}, 422, "text"),
        ({"image_id": "IDX", "annotator": "", "text": "x"}, 422, "annotator"),
        ({"image_id": "IDX", "annotator": "<script>", "text": "x"}, 400, "annotator name"),
        ({"image_id": "IDX", "annotator": "alice", "text": "x", "lead_time_s": -1}, 422, "lead_time_s"),
        ({"image_id": "IDX", "annotator": "alice", "text": "x", "admin": True}, 422, "admin"),
    ],
)
def test_bad_annotations_are_refused_clearly(client, ids, body, status, says):
    body = {k: (ids[0] if v == "IDX" else v) for k, v in body.items()}
    response = client.post("/api/annotations", json=body)
    assert response.status_code == status
    assert says in response.json()["error"]


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"{not json", {"content-type": "application/json"}, 422),
        (b"x" * 5000, {"content-type": "application/json"}, 413),
        (b"[]", {"content-type": "application/json"}, 422),
    ],
)
def test_malformed_and_oversized_bodies(client, content, headers, status):
    response = client.post("/api/annotations", content=content, headers=headers)
    assert response.status_code == status and response.json()["error"]


def test_foreign_host_header_is_refused(client):
    assert client.get("/api/config", headers={"host": "evil.example"}).status_code == 400


def test_images_are_served_by_id_only(client, ids, labelled):
    response = client.get(f"/api/images/{ids[0]}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (labelled[1][0]["width"], labelled[1][0]["height"])
    assert client.get(f"/api/images/{UNKNOWN_ID}").status_code == 404
    assert client.get("/api/images/not-an-id").status_code == 400
    assert client.get("/api/images/..%2F..%2Fetc%2Fpasswd").status_code in (400, 404)


def test_review_queue_is_worst_first_and_verdicts_land_in_the_catalog(client, ids, labelled):
    import duckdb

    data = client.get("/api/review", params={"annotator": "alice"}).json()
    scores = [i["quality_score"] for i in data["items"]]
    assert data["items"][0]["status"] == "no_object" and scores[1:] == sorted(scores[1:])
    target = data["items"][1]["image_id"]
    body = {"image_id": target, "run_id": RUN_ID, "annotator": "alice", "verdict": "reject", "comment": "mask too small"}
    assert client.post("/api/reviews", json=body).status_code == 201
    again = client.get("/api/review", params={"annotator": "alice"}).json()
    assert (again["items"][1]["verdict"], again["progress"]["reviewed"]) == ("reject", 1)
    queue = client.get("/api/queue", params={"annotator": "alice"}).json()["items"]
    assert queue[0]["image_id"] == target and queue[0]["relabel"]
    catalog = client.app.state.ui.workdir.catalog_path
    with duckdb.connect(str(catalog), read_only=True) as con:
        row = con.execute("SELECT review_verdict, review_comment, needs_relabel FROM label_quality WHERE image_id = ?",
                          [target]).fetchone()
    assert row == ("reject", "mask too small", True)


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"verdict": "maybe"}, 422, "verdict"),
        ({"verdict": "comment", "comment": ""}, 400, "comment"),
        ({"run_id": "no-such-run"}, 404, "no-such-run"),
        ({"run_id": "bad run!"}, 422, "run_id"),
        ({"image_id": UNKNOWN_ID}, 404, "not in the configured set"),
    ],
)
def test_bad_reviews_are_refused(client, ids, change, status, says):
    body = {"image_id": ids[0], "run_id": RUN_ID, "annotator": "alice", "verdict": "accept", **change}
    response = client.post("/api/reviews", json=body)
    assert response.status_code == status and says in response.json()["error"]


@pytest.mark.parametrize(("params", "status"), [({}, 422), ({"annotator": "a", "run_id": "nope"}, 404),
                                                ({"annotator": "a", "limit": 0}, 422)])
def test_bad_review_queries(client, params, status):
    assert client.get("/api/review", params=params).status_code == status


def test_mask_overlay_matches_the_image_size(client, ids, labelled):
    response = client.get(f"/api/masks/{RUN_ID}/{ids[0]}")
    overlay = Image.open(io.BytesIO(response.content))
    assert overlay.mode == "RGBA" and overlay.size == (labelled[1][0]["width"], labelled[1][0]["height"])
    assert overlay.getchannel("A").getextrema() == (0, 255)  # transparent background, opaque box outline
    assert client.get(f"/api/masks/{RUN_ID}/{UNKNOWN_ID}").status_code == 404
    assert client.get(f"/api/masks/bad run/{ids[0]}").status_code == 400


def test_stats_report_agreement_between_annotators(client, ids):
    for who, text in (("alice", "red disk"), ("bob", "a red disk"), ("carol", "blue disk")):
        client.post("/api/annotations", json={"image_id": ids[0], "annotator": who, "text": text})
    stats = client.get("/api/stats").json()
    assert (stats["text"], stats["annotators"], stats["agreement"]["images"]) == (3, 3, 1)
    # pairs: (red disk, red disk) exact; (red disk, blue disk) x2 same category only
    assert stats["agreement"]["exact"] == pytest.approx(1 / 3, abs=1e-3)
    assert stats["agreement"]["category"] == 1.0


def test_label_studio_export_route(client, ids):
    client.post("/api/annotations", json={"image_id": ids[0], "annotator": "alice", "text": "red disk"})
    response = client.get("/api/export/label-studio")
    assert "attachment" in response.headers["content-disposition"]
    tasks = response.json()
    assert len(tasks) == 12 and tasks[0]["annotations"][0]["result"][0]["value"]["text"] == ["red disk"]
    assert tasks[0]["predictions"][0]["model_version"] == RUN_ID
    assert "<TextArea" in client.get("/api/export/label-config").text
