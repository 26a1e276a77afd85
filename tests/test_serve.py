"""``sodforge serve`` + ``prefect deployment run build-pseudo-labels/default --watch``, as in the README."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_serve_then_run_the_labelling_deployment(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "params.yaml", project / "params.yaml")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(SODFORGE_PROJECT=str(project), PREFECT_HOME=str(tmp_path / "prefect"), COLUMNS="200")
    log = open(tmp_path / "serve.log", "w")
    # SIGINT as a terminal has it: a shell's background job (nohup make test &) inherits it ignored
    server = subprocess.Popen([str(BIN / "sodforge"), "serve", "--port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while "deployments are being served" not in (tmp_path / "serve.log").read_text():
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.5)
        run = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "build-pseudo-labels/default", "--param", "models=tiny", "--watch"],
            env={**env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}, capture_output=True, text=True, timeout=400,
        )
        assert run.returncode == 0 and "Completed" in run.stdout, run.stdout + run.stderr
        with duckdb.connect(str(project / "data" / "catalog.duckdb"), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM label_quality").fetchone() == (48,)
    finally:
        os.killpg(server.pid, signal.SIGINT)  # Ctrl+C in the terminal
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # never leave a server behind, even when failing
            server.wait()
            raise
        finally:
            log.close()
    with socket.socket() as sock:  # the API server went down with it
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_temporary_servers_left_by_a_killed_run_are_stopped_by_the_next_command(tmp_path):
    from sodforge.env import reap_orphaned_servers

    home = str(tmp_path / "prefect")
    env = {**os.environ, "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT_HOME": home}
    # what a kill -9 of `sodforge label` leaves: its temporary server, now a child of init
    subprocess.run(["sh", "-c", "sleep 300 > /dev/null 2>&1 & echo $! > pid"], cwd=tmp_path, env=env, check=True)
    orphan = int((tmp_path / "pid").read_text())
    other = subprocess.Popen(["sleep", "300"], env=env)  # a live command's own server: its parent is alive
    try:
        assert Path(f"/proc/{orphan}/stat").read_text().rsplit(")", 1)[1].split()[1] == "1"
        assert reap_orphaned_servers(tmp_path / "elsewhere") == []  # another project's servers are left alone
        assert reap_orphaned_servers(home) == [orphan]
        deadline = time.monotonic() + 10
        while Path(f"/proc/{orphan}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{orphan}").exists() and other.poll() is None
    finally:
        other.kill()
        if Path(f"/proc/{orphan}").exists():
            os.kill(orphan, signal.SIGKILL)
