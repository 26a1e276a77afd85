"""Run ids and shard fingerprints change with everything that changes labels, and nothing else."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest
import torch

from engine.labeling import identity
from engine.labeling.identity import runtime_identity
from engine.labeling.pipeline import LabelModels, labelling_run_id
from engine.labeling.shard import shard_fingerprint
from engine.models.runtime import Runtime
from engine.params import LabelParams
from engine.storage import write_table_atomic

MODELS = {"captioner": "blip:tiny:aa", "grounder": "grounding_dino:tiny:bb", "segmenter": "sam:tiny:cc"}
CPU = Runtime(torch.device("cpu"), None)
CUDA0_BF16 = Runtime(torch.device("cuda:0"), torch.bfloat16)


def _ids(runtime: Runtime = CPU, params: LabelParams | None = None, **models) -> tuple[str, str]:
    """(run id, shard fingerprint) for these models, runtime and parameters."""
    identities = {**MODELS, **models, "runtime": runtime_identity(runtime)}
    params = params or LabelParams()
    return labelling_run_id(identities, params), shard_fingerprint(_ids.manifest, identities, params)


@pytest.fixture(autouse=True)
def _manifest(tmp_path):
    _ids.manifest = write_table_atomic(pa.table({"image_id": ["a"]}), tmp_path / "shard-00000.parquet", "manifest-fp")


def _versions(**changed):
    real = identity.library_versions()
    return lambda: {**real, **changed}


def _patched(monkeypatch, name, value) -> tuple[str, str]:
    monkeypatch.setattr(identity, name, value)
    return _ids(CUDA0_BF16)


@pytest.mark.parametrize(
    ("what", "change", "same"),
    [
        ("GPU index", lambda mp: _ids(Runtime(torch.device("cuda:1"), torch.bfloat16)), True),
        ("batch size (performance only)", lambda mp: _ids(CUDA0_BF16, LabelParams(batch_size=2)), True),
        ("device type", lambda mp: _ids(CPU), False),
        ("precision", lambda mp: _ids(Runtime(torch.device("cuda:0"), torch.float16)), False),
        ("weights", lambda mp: _ids(CUDA0_BF16, captioner="blip:dir:other"), False),
        ("label parameter", lambda mp: _ids(CUDA0_BF16, LabelParams(box_threshold=0.4)), False),
        ("labelling code version", lambda mp: _patched(mp, "LABELLING_CODE_VERSION", 99), False),
        ("torch version", lambda mp: _patched(mp, "library_versions", _versions(torch="9.9.9")), False),
        ("transformers version", lambda mp: _patched(mp, "library_versions", _versions(transformers="0.0.1")), False),
    ],
)
def test_what_changes_the_run_id_and_the_shard_fingerprints(monkeypatch, what, change, same):
    reference = _ids(CUDA0_BF16)
    run_id, shard_fp = change(monkeypatch)
    assert (run_id == reference[0]) is same, what
    assert (shard_fp == reference[1]) is same, what


def test_runtime_identity_names_device_type_and_precision_only():
    assert runtime_identity(CUDA0_BF16) == {"device": "cuda", "precision": "bf16"}
    assert runtime_identity(Runtime(torch.device("cuda:3"), torch.float16)) == {"device": "cuda", "precision": "fp16"}
    assert runtime_identity(CPU) == {"device": "cpu", "precision": "fp32"}
    assert runtime_identity(None) == {"device": "unknown", "precision": "unknown"}
    versions = identity.library_versions()
    assert set(versions) == {"torch", "transformers"} and "missing" not in versions.values()


@dataclasses.dataclass
class _FakeModel:
    identity: str
    runtime: Runtime | None = None


def test_loaded_models_report_the_runtime_they_run_on():
    models = LabelModels(_FakeModel("c", CPU), _FakeModel("g", CPU), _FakeModel("s", CPU))
    assert models.identity == {"captioner": "c", "grounder": "g", "segmenter": "s",
                               "runtime": {"device": "cpu", "precision": "fp32"}}
