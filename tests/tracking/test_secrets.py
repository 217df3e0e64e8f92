"""Credentials in a URI are never written or printed (issue: secrets in URIs): a run against a tracking
server reached as ``http://user:<marker>@host`` leaves the marker in no file of its work folder (Hydra's
copies included), no byte of its output, no param, tag or artifact of its MLflow run, and no error
message."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from l2exp.redact import redact, redact_obj
from tests.conftest import run_cli
from tests.mlflow_server import start_server, stop_server

MARKER = "Pw-l2exp-7Hq2"


@pytest.mark.parametrize("text, want", [
    (f"http://alice:{MARKER}@10.0.0.1:5000/x", "http://alice:***@10.0.0.1:5000/x"),
    (f"postgresql://u:{MARKER}@db/mlflow", "postgresql://u:***@db/mlflow"),
    (f"wss://h/ws?listenKey=1&token={MARKER}&x=2", "wss://h/ws?listenKey=1&token=***&x=2"),
    ("sqlite:////tmp/mlruns/mlflow.db", "sqlite:////tmp/mlruns/mlflow.db"),
    ("http://127.0.0.1:5000/#/experiments/1", "http://127.0.0.1:5000/#/experiments/1"),
])
def test_redact(text, want):
    assert redact(text) == want
    assert redact_obj({"a": [text, (text,)]}) == {"a": [want, (want,)]}


def _files_with(root: Path, marker: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and marker.encode() in p.read_bytes()]


@pytest.mark.slow
def test_a_password_in_the_tracking_uri_is_published_nowhere(tmp_path):
    server, uri = start_server(tmp_path)
    secret_uri = uri.replace("http://", f"http://l2exp:{MARKER}@")
    try:
        work = tmp_path / "work"
        work.mkdir()
        r = run_cli(["mode=train", "tracking=server", "data.reader.n_snapshots=15000", "features=minimal",
                     "model.n_estimators=20", "mode.progress=false", f"tracking.uri={secret_uri}"], work,
                    env={"MLFLOW_TRACKING_URI": secret_uri}, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert MARKER not in r.stdout + r.stderr
        assert "l2exp:***@" in r.stdout  # the printed links name the server, without its password
        assert not _files_with(work, MARKER)  # summary.json, journal, Hydra's .hydra/*.yaml, logs
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("l2exp-train")
        (run,) = client.search_runs([exp.experiment_id])
        assert MARKER not in repr(run.data.params) + repr(run.data.tags)
        assert run.data.params["tracking.uri"] == secret_uri.replace(MARKER, "***")
        mlflow.set_tracking_uri(uri)
        arts = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=str(tmp_path / "arts")))
        assert not _files_with(arts, MARKER)  # config.yaml, overrides.yaml, every other artifact
        # an error that names the tracking store names it without the password
        bad = run_cli(["mode=promote", "tracking=server", "mode.experiment=no-such-experiment",
                       f"tracking.uri={secret_uri}"], work, env={"MLFLOW_TRACKING_URI": secret_uri}, timeout=300)
        assert bad.returncode == 2 and MARKER not in bad.stdout + bad.stderr, bad.stderr[-1500:]
        assert not _files_with(work, MARKER)
    finally:
        stop_server(server)
