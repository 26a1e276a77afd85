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


def reap_orphaned_servers(prefect_home: str | Path | None = None) -> list[int]:
    """Stop temporary Prefect API servers whose owner is gone; returns their pids.

    A command that runs a flow in-process starts Prefect's temporary server as a child process and
    stops it on exit, but a ``kill -9`` (or an OOM kill) of the command leaves the server running
    forever, re-parented to init. Those servers carry ``PREFECT__SERVER_EPHEMERAL=1`` in their
    environment; the ones of this project's ``PREFECT_HOME`` whose parent is init (pid 1) are
    stopped with SIGTERM. Linux only (reads ``/proc``); elsewhere nothing happens.
    """
    import signal

    home = str(prefect_home or os.environ.get("PREFECT_HOME", ""))
    proc = Path("/proc")
    if not home or not proc.is_dir():
        return []
    reaped = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm)": state, ppid
            if parent != 1:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):  # gone meanwhile, or another user's process
            continue
        if b"PREFECT__SERVER_EPHEMERAL=1" in environ and f"PREFECT_HOME={home}".encode() in environ:
            try:
                os.kill(int(entry.name), signal.SIGTERM)
                reaped.append(int(entry.name))
            except OSError:
                continue
    return reaped
