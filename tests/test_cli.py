"""The ``sodforge`` command line, run as a user would (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _run(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / "sodforge"), *args], env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"sodforge {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def cli_env(session_tmp, tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    env["COLUMNS"] = "200"
    return env


@pytest.mark.parametrize("command", [[], ["label"], ["catalog"], ["catalog", "sql"], ["models", "tiny"], ["serve"], ["demo"]])
def test_every_command_has_help(command, cli_env):
    result = _run(*command, "--help", env=cli_env)
    assert "Usage" in result.stdout


@pytest.mark.slow
def test_label_then_query_the_catalog(sample_set, tmp_path, cli_env):
    workdir = tmp_path / "run"
    _run("label", str(sample_set), "--workdir", str(workdir), "--models", "tiny", "--shard-size", "4", env=cli_env)
    assert (workdir / "catalog.duckdb").is_file()
    assert len(list((workdir / "catalog" / "labels").rglob("shard-*.parquet"))) == 3
    out = _run("catalog", "sql", "SELECT status, count(*) AS n FROM label_quality GROUP BY 1", "--json",
               "--workdir", str(workdir), env=cli_env).stdout
    counts = {row["status"]: row["n"] for row in map(json.loads, out.strip().splitlines())}
    assert sum(counts.values()) == 12 and set(counts) <= {"ok", "no_object"}
    summary = _run("catalog", "summary", "--workdir", str(workdir), env=cli_env).stdout
    assert "labelling run" in summary and "images" in summary and "12" in summary


def test_clear_errors_for_bad_input(tmp_path, cli_env):
    result = _run("label", str(tmp_path / "missing"), "--workdir", str(tmp_path / "w"), env=cli_env, check=False)
    assert result.returncode == 2 and "images folder not found" in result.stderr
    result = _run("catalog", "sql", "SELECT 1", "--workdir", str(tmp_path), env=cli_env, check=False)
    assert result.returncode == 2 and "no catalog here" in result.stderr
    (tmp_path / "catalog.duckdb").unlink(missing_ok=True)
    _run("catalog", "build", "--workdir", str(tmp_path), env=cli_env)
    result = _run("catalog", "sql", "SELECT nope FROM label_quality", "--workdir", str(tmp_path), env=cli_env, check=False)
    assert result.returncode == 2 and "nope" in result.stderr


def test_user_text_is_printed_literally(tmp_path, cli_env):
    """Rich markup (``[/red]``, ``[bold]``) and emoji codes (``:label:``) in paths, errors and query
    results are shown as written, never interpreted (it used to crash or turn into pictures)."""
    odd = tmp_path / "set [/red] :label: [bold]x"
    result = _run("label", str(odd), "--workdir", str(tmp_path / "w"), env=cli_env, check=False)
    assert result.returncode == 2, result.stderr
    assert f"error: {odd}: images folder not found" in result.stderr
    _run("catalog", "build", "--workdir", str(tmp_path), env=cli_env)
    out = _run("catalog", "sql", "SELECT '[/red] :label: [bold]x' AS \"[i]col\"", "--workdir", str(tmp_path),
               env=cli_env).stdout
    assert "[/red] :label: [bold]x" in out and "[i]col" in out
    result = _run("catalog", "sql", "SELECT * FROM \"[/red]:label:\"", "--workdir", str(tmp_path), env=cli_env,
                  check=False)
    assert result.returncode == 2 and "[/red]:label:" in result.stderr and "Traceback" not in result.stderr


def test_models_tiny_saves_loadable_models(tmp_path, cli_env):
    _run("models", "tiny", str(tmp_path / "m"), env=cli_env)
    from engine.models import load_model, resolve_runtime
    from engine.params import ModelSpec

    for family in ("blip", "grounding_dino", "sam"):
        assert (tmp_path / "m" / family / "config.json").is_file()
    captioner = load_model(ModelSpec("blip", str(tmp_path / "m" / "blip")), resolve_runtime("cpu"))
    assert captioner.identity.startswith("blip:dir:")


@pytest.mark.parametrize(
    ("params_text", "args", "message"),
    [
        ("lable:\n  num_beams: 2\n", [], "unknown section 'lable' (did you mean 'label'?)"),
        ("label:\n  num_beams: 0\n", [], "label.num_beams: must be >= 1, got 0"),
        ("label:\n  max_boxes: 2.5\n", [], "label.max_boxes: expected a whole number, got 2.5 (float)"),
        ("label:\n  box_threshold: high\n", [], "label.box_threshold: expected a number, got 'high' (str)"),
        ("label:\n  num_beams: 1\n", ["--shard-size", "0"], "Invalid value for '--shard-size'"),
    ],
)
def test_bad_parameters_stop_label_before_any_work(tmp_path, cli_env, params_text, args, message):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"")  # an image file (an empty one: labelled as an error row)
    (tmp_path / "params.yaml").write_text(params_text)
    result = _run("label", str(tmp_path / "imgs"), "--workdir", str(tmp_path / "w"), "--params",
                  str(tmp_path / "params.yaml"), *args, env=cli_env, check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "w").exists()  # nothing was started


def test_a_folder_without_images_is_a_clear_error(tmp_path, cli_env):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42")
    result = _run("label", str(tmp_path / "imgs"), "--workdir", str(tmp_path / "w"), env=cli_env, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert (f"error: {tmp_path / 'imgs'}: no images found (looked for .bmp, .gif, .jpeg, .jpg, .png, .tif, .tiff, "
            ".webp files); 1 other files skipped (clip.mp4: not an image (.mp4))") in result.stderr
    assert not (tmp_path / "w").exists()
