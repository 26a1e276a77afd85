"""``sodforge serve``: a local Prefect API server plus the served deployments, stopped together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rich.console import Console

from sodforge.output import literal


def wait_for_api(url: str, timeout_s: float = 90.0, process: subprocess.Popen | None = None) -> None:
    """Poll ``url``/health until it answers, the process dies, or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"Prefect server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"Prefect API at {url} did not answer within {timeout_s:.0f} s")


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent exits (no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve_with_local_server(project: Path, port: int, console: Console) -> None:
    """Start ``prefect server start`` on 127.0.0.1:``port``, then serve the deployments until Ctrl+C."""
    api_url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_API_URL": api_url}
    log_path = Path(os.environ["PREFECT_HOME"]) / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        # Own session: Ctrl+C reaches only us, so the runner shuts down while the API still answers;
        # then we stop the server. If we die hard, the kernel stops it (parent-death signal).
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
        )
    try:
        console.print(literal(f"starting Prefect server at {api_url} (log: {log_path}) ..."))
        wait_for_api(api_url, process=server)
        os.environ["PREFECT_API_URL"] = api_url
        _ensure_sample(project, console)
        console.print(literal(
            "serving deployments. In another shell:\n"
            f"  export PREFECT_API_URL={api_url}\n"
            "  .venv/bin/prefect deployment run build-pseudo-labels/default --watch\n"
            f"UI: http://127.0.0.1:{port}   Ctrl+C stops the server and the deployments."
        ))
        from flows.serve import serve_deployments

        serve_deployments(project)
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def _ensure_sample(project: Path, console: Console) -> None:
    sample = project / "data" / "raw" / "sample"
    if not (sample / "images").is_dir():
        from engine.datasets import generate_sample_set

        generate_sample_set(sample)
        console.print(literal(f"generated the sample set at {sample} (the deployments' default input)"))
