"""Shared fixtures. Environment is set before Prefect or torch are imported anywhere.

Fixtures: ``tiny_models_dir`` (tiny BLIP/GroundingDINO/SAM saved once per session),
``sample_set`` (a small generated set with true masks), ``prefect_harness`` (one temporary
Prefect API for the session), ``device`` (CPU; CUDA only for tests marked ``gpu``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="sodforge-tests-"))
os.environ["PREFECT_HOME"] = str(_SESSION_TMP / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(_SESSION_TMP / "prefect" / "storage")
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
os.environ["SODFORGE_CACHE"] = str(_SESSION_TMP / "cache")
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.pop("PREFECT_API_URL", None)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
torch.set_flush_denormal(True)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def session_tmp() -> Path:
    return _SESSION_TMP


@pytest.fixture(scope="session")
def tiny_models_dir(session_tmp: Path) -> Path:
    """``blip/``, ``grounding_dino/`` and ``sam/`` saved with save_pretrained."""
    from engine.models import build_tiny_models

    out = session_tmp / "tiny-models"
    build_tiny_models(out)
    return out


@pytest.fixture(scope="session")
def sample_set(session_tmp: Path) -> Path:
    """12 generated images (96x128) with true masks and depth maps."""
    from engine.datasets import generate_sample_set

    out = session_tmp / "sample"
    generate_sample_set(out, count=12, size_hw=(96, 128), seed=3)
    return out


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for the whole session (started lazily by the tests that ask)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def device() -> torch.device:
    return torch.device("cpu")
