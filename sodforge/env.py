"""Process environment for the command line: Prefect home inside the project, telemetry off."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """``$SODFORGE_PROJECT`` if set, else the source checkout when installed from one (editable),
    else ``~/.sodforge``. Deployments' default paths (``data/``, ``params.yaml``) live under it."""
    if os.environ.get("SODFORGE_PROJECT"):
        return Path(os.environ["SODFORGE_PROJECT"]).resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "engine").is_dir():
        return checkout
    return Path.home() / ".sodforge"


def configure_environment() -> None:
    """Set defaults (never overriding what the user set) before Prefect or DVC are imported."""
    root = project_root()
    prefect_home = Path(os.environ.get("PREFECT_HOME", root / ".prefect"))
    defaults = {
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(prefect_home / "storage"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",  # slow, busy machines
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "DVC_NO_ANALYTICS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def quiet_model_libraries() -> None:
    """Hide per-load progress bars and advisory warnings of transformers (call before labelling)."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message="The value of the smallest subnormal")
    warnings.filterwarnings("ignore", message="The key `labels` is will return integer ids")
