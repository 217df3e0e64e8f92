"""Tracking outages: a real ``mlflow server`` on 127.0.0.1, killed in the middle of a training run --
l2exp returns within 60 s with one message (no traceback, no minutes of retries); an unreachable
server stops a run before it does any work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import run_cli
from tests.sim.fake_exchange import _free_port


def start_server(workdir) -> tuple[subprocess.Popen, str]:  # noqa: ANN001
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{workdir}/server.db",
                             "--artifacts-destination", str(workdir / "server-artifacts"), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if requests.get(f"{uri}/health", timeout=1).ok:
                return proc, uri
        except requests.RequestException:
            time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("mlflow server did not start")


def running_runs(uri: str) -> int:
    try:
        r = requests.post(f"{uri}/api/2.0/mlflow/runs/search", json={"experiment_ids": ["1", "2", "3"],
                                                                     "filter": "attributes.status = 'RUNNING'"},
                          timeout=2)
        return len(r.json().get("runs", []))
    except (requests.RequestException, ValueError):
        return 0


@pytest.mark.slow
def test_server_killed_mid_run_returns_within_60s_with_one_message(workdir):
    server, uri = start_server(workdir)
    env = dict(os.environ, L2EXP_WORKDIR=str(workdir), MLFLOW_TRACKING_URI=uri, COLUMNS="200")
    args = [sys.executable, "-m", "l2exp.cli", "mode=train", "tracking=server", "data.reader.n_snapshots=60000",
            "model.n_estimators=400", "split=walk_forward", "mode.progress=false"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None and not running_runs(uri):
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before the server could be killed"
        os.killpg(server.pid, signal.SIGKILL)
        killed = time.time()
        out, err = proc.communicate(timeout=120)
        took = time.time() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert took < 60, took
    assert proc.returncode == 2, (proc.returncode, err[-3000:])
    assert "stopped answering" in err and "Traceback" not in err, err[-3000:]


def test_unreachable_server_stops_before_any_work(workdir):
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens
    t0 = time.time()
    proc = run_cli(["mode=train", "tracking=server", "data.reader.n_snapshots=20000"], workdir,
                   env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 2 and "not reachable" in proc.stderr and "Traceback" not in proc.stderr
    assert time.time() - t0 < 60
