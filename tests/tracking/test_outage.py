"""Tracking outages: a real ``mlflow server`` on 127.0.0.1, killed in the middle of a training run --
l2exp returns within 60 s with one message (no traceback, no minutes of retries) naming the journal
it kept; with the server back, ``mode=relog`` completes the same run (metrics, artifacts, the model
registered with its real version) and it can be promoted. An unreachable server stops a run before
it does any work."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import run_cli
from tests.mlflow_server import start_server
from tests.sim.fake_exchange import _free_port


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
    args = [sys.executable, "-m", "l2exp.cli", "mode=train", "tracking=server", "data.reader.n_snapshots=30000",
            "model.n_estimators=150", "split=walk_forward", "mode.progress=false"]
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
    flat = " ".join(err.split())  # rich wraps the message
    found = re.search(r"mode=relog mode\.run_id=(\w+)", flat)
    assert found, flat[-2000:]
    journals = [p.parent for p in (workdir / "outputs").rglob("state.json")
                if json.loads(p.read_text())["run_id"] == found.group(1)]
    assert len(journals) == 1 and str(journals[0]) in flat, flat[-2000:]
    state = json.loads((journals[0] / "state.json").read_text())
    assert state["finished"] and state["offline_from"], state

    server, uri = start_server(workdir, int(uri.rsplit(":", 1)[1]))  # the same server back, same database
    try:
        relog = run_cli(["mode=relog", "tracking=server", f"mode.run_id={state['run_id']}"], workdir,
                        env={"MLFLOW_TRACKING_URI": uri})
        assert relog.returncode == 0, relog.stderr[-3000:]
        run = requests.get(f"{uri}/api/2.0/mlflow/runs/get", params={"run_id": state["run_id"]}, timeout=5).json()
        info, data = run["run"]["info"], run["run"]["data"]
        assert info["status"] == "FINISHED"
        metrics = {m["key"] for m in data["metrics"]}
        assert {"val_log_loss", "test_log_loss", "beats_baseline"} <= metrics, metrics
        tags = {t["key"]: t["value"] for t in data["tags"]}
        version = tags["l2exp.model_version"]
        assert version.isdigit(), tags
        arts = requests.get(f"{uri}/api/2.0/mlflow/artifacts/list", params={"run_id": state["run_id"]},
                            timeout=5).json()
        assert {"config.yaml", "oos", "plots", "feature_importance.csv"} <= {f["path"] for f in arts["files"]}
        again = run_cli(["mode=relog", "tracking=server", f"mode.run_id={state['run_id']}"], workdir,
                        env={"MLFLOW_TRACKING_URI": uri})
        assert again.returncode == 2 and "already re-logged" in again.stderr
        promote = run_cli(["mode=promote", "tracking=server", "mode.require_beat_baseline=false"], workdir,
                          env={"MLFLOW_TRACKING_URI": uri})
        assert promote.returncode == 0, promote.stderr[-3000:]
        assert f"version {version}" in " ".join(promote.stdout.split())
    finally:
        os.killpg(server.pid, signal.SIGKILL)


def test_unreachable_server_stops_before_any_work(workdir):
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens
    t0 = time.time()
    proc = run_cli(["mode=train", "tracking=server", "data.reader.n_snapshots=20000"], workdir,
                   env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 2 and "not reachable" in proc.stderr and "Traceback" not in proc.stderr
    assert time.time() - t0 < 60


def test_an_answer_cut_off_by_the_dying_server_is_an_outage():
    """Killed while its answer was on the wire, the server leaves an IncompleteRead (seen in CI: exit 1
    with a traceback instead of the journal's one message)."""
    import http.client

    from mlflow.exceptions import MlflowException

    from l2exp.tracking.setup import is_outage

    assert is_outage(requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead(0 bytes read)"))
    assert is_outage(http.client.IncompleteRead(b"", 2))
    assert is_outage(MlflowException("API request to http://127.0.0.1:1/api/2.0/mlflow/runs/log-batch failed with "
                                     "exception ChunkedEncodingError(ProtocolError('Connection broken: "
                                     "IncompleteRead(0 bytes read, 2 more expected)'))"))
    assert not is_outage(MlflowException("API request to http://x/api failed: RESOURCE_ALREADY_EXISTS"))
    assert not is_outage(ValueError("IncompleteRead"))
