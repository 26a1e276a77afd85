"""Labelling uses a fine-tuned captioner only when told, and says which captioner it uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.captioning.checkpoint import INFO_FILE, choose_captioner
from engine.labeling.plan import choose_run_captioner
from engine.params import ModelsParams

BIN = Path(sys.executable).parent


def _checkpoint(path: Path, base: str = "tiny", complete: bool = True) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / INFO_FILE).write_text(json.dumps({"base": base, "complete": complete}))
    return path


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: _checkpoint(d), None),
        (lambda d: d, "no such checkpoint directory"),
        (lambda d: _checkpoint(d, complete=False), "fine-tuning has not finished"),
        (lambda d: _checkpoint(d, base="Salesforce/blip-image-captioning-large"), "fine-tuned from"),
        (lambda d: (d.mkdir(), d)[1], "not a fine-tuned captioner"),
    ],
)
def test_a_checkpoint_is_used_only_when_it_fits_and_an_explicit_one_must_fit(tmp_path, make, problem):
    checkpoint = make(tmp_path / "ckpt")
    lenient = choose_captioner("tiny", checkpoint)
    if problem is None:
        assert lenient.finetuned and lenient.source == str(checkpoint.resolve())
        assert "fine-tuned checkpoint" in lenient.describe()
        assert choose_captioner("tiny", checkpoint, strict=True) == lenient
        return
    assert lenient.source == "tiny" and not lenient.finetuned
    assert "NOT used" in lenient.describe() and problem in lenient.describe()  # never silent
    with pytest.raises(ValueError, match=problem):
        choose_captioner("tiny", checkpoint, strict=True)


def test_no_silent_pickup_of_a_checkpoint_in_the_current_folder(tmp_path, monkeypatch):
    _checkpoint(tmp_path / "models" / "captioner")  # what `make repro` used to leave in ./models/captioner
    _checkpoint(tmp_path / "models" / "captioner-human")
    monkeypatch.chdir(tmp_path)
    models, choice = choose_run_captioner(ModelsParams())
    assert models.captioner_checkpoint is None and models.specs()["captioner"].source == "tiny"
    assert choice.describe().startswith("tiny (the profile's captioner; no fine-tuned checkpoint asked for)")

    told, choice = choose_run_captioner(ModelsParams(), "models/captioner-human")  # --captioner
    assert told.captioner_checkpoint == str(tmp_path / "models" / "captioner-human") == choice.source
    assert told.specs()["captioner"].source == choice.source
    from_params, _ = choose_run_captioner(ModelsParams(captioner_checkpoint="models/captioner-human"))
    assert from_params == told
    overridden, choice = choose_run_captioner(ModelsParams(captioner_checkpoint="models/captioner-human"), "none")
    assert overridden.captioner_checkpoint is None and not choice.finetuned
    with pytest.raises(ValueError, match="no such checkpoint"):
        choose_run_captioner(ModelsParams(), "models/typo")


@pytest.mark.slow
def test_sodforge_label_refuses_an_unusable_captioner_before_any_work(tmp_path, sample_set):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    result = subprocess.run(
        [str(BIN / "sodforge"), "label", str(sample_set), "--workdir", str(tmp_path / "wd"), "--captioner",
         str(_checkpoint(tmp_path / "large-tune", base="Salesforce/blip-image-captioning-large"))],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2 and "fine-tuned from" in output and "large-tune" in output, output
    assert not (tmp_path / "wd").exists()
