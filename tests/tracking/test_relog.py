"""The run journal and ``mode=relog`` without a server: an outage simulated in-process (MLflow's metric
call raising a connection error), then the missing calls sent into the same run; and a whole journal
re-logged into a tracking store that never had the run (a new run, the model registered there)."""

from __future__ import annotations

import json

import mlflow
import pytest
import requests
from mlflow import MlflowClient

from l2exp.errors import UserError
from l2exp.modes.relog import run_relog
from l2exp.modes.train import run_train
from l2exp.tracking import journal as jr
from tests.conftest import make_cfg

SMALL = ["data.reader.n_snapshots=20000", "features=minimal", "mode.progress=false", "model.n_estimators=30"]


def _journals(workdir) -> dict[str, object]:
    return {jr.read(p.parent)[0].run_id: p.parent for p in (workdir / "outputs").rglob(jr.STATE)}


def _client(uri: str) -> MlflowClient:
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, registry_uri=uri)


def test_outage_mid_run_keeps_everything_and_relog_completes_the_same_run(workdir, monkeypatch):
    real = mlflow.log_metrics

    def down(*args, **kwargs):  # noqa: ANN002, ANN003
        raise requests.ConnectionError("Connection refused")

    monkeypatch.setattr(mlflow, "log_metrics", down)
    with pytest.raises(UserError) as err:
        run_train(make_cfg(["mode=train", f"workdir={workdir}", *SMALL]))
    monkeypatch.setattr(mlflow, "log_metrics", real)
    assert "stopped answering" in str(err.value) and "mode=relog mode.run_id=" in err.value.fix
    (run_id, root), = _journals(workdir).items()
    state, entries = jr.read(root)
    assert state.finished and state.offline_from == next(e["seq"] for e in entries if e["call"] == "metrics")
    assert (root / "files" / str(entries[-2]["seq"]) / "model" / "MLmodel").exists()  # the model, kept

    client = _client(f"sqlite:///{workdir}/mlruns/mlflow.db")
    before = client.get_run(run_id)
    assert "val_log_loss" not in before.data.metrics
    assert before.data.tags.get("l2exp.model_version") in (None, "pending-relog")
    s = run_relog(make_cfg(["mode=relog", f"workdir={workdir}", f"mode.run_id={run_id}"]))
    (done,) = s["journals"]
    assert done["run_id"] == run_id and done["into"] == "same run" and done["model_version"] == "1"
    after = client.get_run(run_id)
    assert after.info.status == "FINISHED"
    assert {"val_log_loss", "test_log_loss", "beats_baseline", "rows_in"} <= set(after.data.metrics)
    assert after.data.tags["l2exp.model_version"] == "1"
    version = client.get_model_version(after.data.tags["l2exp.model_name"], "1")
    assert version.run_id == run_id
    with pytest.raises(UserError, match="already re-logged"):
        run_relog(make_cfg(["mode=relog", f"workdir={workdir}", f"mode.run_id={run_id}"]))


def test_relog_into_a_store_that_never_had_the_run(workdir, monkeypatch):
    s = run_train(make_cfg(["mode=train", f"workdir={workdir}", *SMALL]))
    root = _journals(workdir)[s["run_id"]]
    other = f"sqlite:///{workdir}/other/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    out = run_relog(make_cfg(["mode=relog", f"workdir={workdir}", f"mode.path={root}"]))
    (done,) = out["journals"]
    assert done["into"].startswith("new run") and done["run_id"] != s["run_id"]
    client = _client(other)
    run = client.get_run(done["run_id"])
    original = _client(f"sqlite:///{workdir}/mlruns/mlflow.db").get_run(s["run_id"])
    assert run.data.tags["l2exp.relogged_from"] == s["run_id"]
    assert run.data.metrics == original.data.metrics
    assert run.data.params == original.data.params
    assert client.get_experiment(run.info.experiment_id).name == "l2exp-train"
    assert run.data.tags["l2exp.model_version"] == "1"
    files = {f.path for f in client.list_artifacts(done["run_id"])}
    assert {"config.yaml", "oos", "plots", "features.json", "feature_importance.csv"} <= files
    _client(other)
    bundle_meta = mlflow.models.get_model_info(f"models:/{s['model_name']}/1").metadata["l2exp"]
    assert bundle_meta["train_run_id"] == s["run_id"]  # the metadata as trained, unchanged
    assert json.loads((root / jr.STATE).read_text())["relogged_as"] == done["run_id"]


def test_relog_names_what_is_missing(workdir):
    with pytest.raises(UserError, match="needs the run"):
        run_relog(make_cfg(["mode=relog", f"workdir={workdir}"]))
    with pytest.raises(UserError, match="no journal of run"):
        run_relog(make_cfg(["mode=relog", f"workdir={workdir}", "mode.run_id=abc"]))
