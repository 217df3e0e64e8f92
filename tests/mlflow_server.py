"""A real ``mlflow server`` on 127.0.0.1 for tests (SQLite backend, proxied artifact store), as a team
would run one; returned with its URI once ``/health`` answers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from l2exp.tracking.local_store import seed
from tests.sim.fake_exchange import _free_port


def start_server(workdir: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    port = port or _free_port()
    db = workdir / "server.db"
    seed(db)  # as l2exp starts a local store: not MLflow's migrations (~1 s) each time
    uri = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{db}",
                             "--artifacts-destination", str(workdir / "server-artifacts"), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            # MLflow 3's server-side jobs (GenAI evaluation, trace rollups): a job runner and 7
                            # huey consumers, each a Python importing MLflow -- ~15 CPU-s per server, unused by l2exp
                            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if requests.get(f"{uri}/health", timeout=1).ok:
                return proc, uri
        except requests.RequestException:
            time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("mlflow server did not start")



def stop_server(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
