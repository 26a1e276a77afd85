"""The ``evaluate`` flow (pseudo-label and prediction-folder modes), its artifacts and deployment."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.catalog import RunRecord, Workdir
from engine.labeling.record import PseudoLabel, labels_to_table
from engine.masks import encode_rle
from engine.storage import write_table_atomic

GT = np.zeros((8, 8), np.uint8)
GT[:4] = 255


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``masks/`` (a, b), ``preds/`` (a perfect, b inverted) and a workdir whose run labels a perfectly."""
    for sub in ("masks", "preds"):
        (tmp_path / sub).mkdir()
    for stem, pred in (("a", GT), ("b", 255 - GT)):
        cv2.imwrite(str(tmp_path / "masks" / f"{stem}.png"), GT)
        cv2.imwrite(str(tmp_path / "preds" / f"{stem}.png"), pred)
    wd = Workdir.at(tmp_path / "work")
    labels = [PseudoLabel(image_id="ia", path="/x/a.jpg", run_id="r1", shard="s", status="ok", height=8, width=8,
                          mask_rle=encode_rle(GT > 0)),
              PseudoLabel(image_id="ib", path="/x/b.jpg", run_id="r1", shard="s", status="no_object", height=8, width=8)]
    write_table_atomic(labels_to_table(labels), wd.labels_dir("r1") / "shard-00000.parquet")
    RunRecord("r1", "build-pseudo-labels", {}, {}, started_at=datetime.now(UTC)).save(wd)
    return tmp_path


def test_flow_modes_and_artifacts(project, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.evaluate import evaluate

    labels = evaluate(workdir=str(project / "work"), gt=str(project / "masks"), out=str(project / "out-labels"),
                      params_file=None)
    block = labels["metrics"][next(iter(labels["metrics"]))]
    assert block["MAE"] == pytest.approx(0.25) and block["empty_predictions"] == 1  # b: no_object -> empty map
    preds = evaluate(pred=str(project / "preds"), gt=str(project / "masks"), out=str(project / "out-preds"),
                     worst=1, params_file=None)
    assert json.loads(Path(preds["paths"]["metrics"]).read_text()) == preds["metrics"]
    assert next(iter(preds["metrics"].values()))["MAE"] == pytest.approx(0.5)
    assert len(list((project / "out-preds" / "report" / "overlays").rglob("*.png"))) == 1
    with get_client(sync_client=True) as client:
        for key in ("evaluation-metrics", "evaluation-report"):
            found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
            assert len(found) >= 2, key
    table = [a for a in found if "pr_curves" in str(a.data)]
    assert table, "markdown artifact lists the PNG paths"


def test_task_fns_without_a_flow_run(project):
    from tasks.evaluate import evaluate_labels_task, write_outputs_task

    out = str(project / "out")
    labelled = evaluate_labels_task.fn(str(project / "work"), str(project / "masks"), None, "toy", out,
                                       {"missing": "error", "worst": 0, "overlay_threshold": 0.5})
    assert labelled["run_id"] == "r1"
    result = write_outputs_task.fn([labelled["report"]], "m", out, None)
    assert result["metrics"]["toy"]["images"] == 2
    assert Path(result["paths"]["table"]).is_file()


def test_flow_rejects_ambiguous_inputs(project):
    from flows.evaluate import _prediction_reports

    with pytest.raises(ValueError, match="exactly one"):
        _prediction_reports(str(project / "preds"), None, None, None, str(project / "o"), {})


def test_deployment(tmp_path):
    from flows.evaluate import deployments

    (deployment,) = deployments(tmp_path)
    assert deployment.name == "default" and deployment.flow_name == "evaluate"
    assert deployment.parameters["gt"] == str(tmp_path / "data" / "raw" / "sample" / "masks")
