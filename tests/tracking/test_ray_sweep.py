"""Sweeps on a Ray cluster: a real local cluster (``ray start --head`` on 127.0.0.1, 2 CPUs) and a real
``mlflow server``; ``l2exp -m hydra/launcher=ray_cluster`` runs each job as a Ray task (in a Ray worker
process, not the driver), and every child run lands in the server nested under the sweep's one parent.
Ray is the optional extra ``.[ray]``, which ``scripts/test.sh`` installs: there a missing Ray fails."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from omegaconf import OmegaConf

from tests.conftest import make_cfg, run_cli, sweep_runs
from tests.mlflow_server import start_server, stop_server
from tests.ray_cluster import need_ray

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]


def test_ray_launcher_config_resolves_the_driver_settings(workdir):
    need_ray()
    from hydra import compose, initialize_config_dir

    from l2exp.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=ray_cluster"], return_hydra_config=True)
    ray_cfg = cfg.hydra.launcher.ray
    env = OmegaConf.to_container(ray_cfg.init.runtime_env.env_vars, resolve=True)
    assert env["L2EXP_WORKDIR"] == str(workdir) and env["MLFLOW_TRACKING_URI"].startswith("sqlite:////")
    assert cfg.hydra.launcher._target_.endswith("RayLauncher") and ray_cfg.remote.num_cpus == 1
    assert make_cfg(["mode=train"]).mode.tracked  # the sweep's jobs are tracked runs


# a hang guard, not a speed target: 34 s on an idle 2-core machine, 285-319 s with two busy processes beside
# the suite (four fresh Ray workers importing and loading the kernels) -- half of the suite's 600 s default
@pytest.mark.timeout(1800)
def test_sweep_runs_each_job_as_a_ray_task_nested_under_one_parent(workdir, ray_cluster):
    proc, uri = start_server(workdir)
    try:
        r = run_cli(["-m", "mode=train", "hydra/launcher=ray_cluster", "tracking=server", "model=lightgbm",
                     "features=minimal,full", "model.n_estimators=20,40", "data.reader.n_snapshots=15000"], workdir,
                    env={"MLFLOW_TRACKING_URI": uri, "RAY_ADDRESS": ray_cluster}, timeout=1500)
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
        client = MlflowClient(uri)
        parent, children = sweep_runs(client)
        assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
        assert sorted((c.data.tags["l2exp.features"], c.data.params["model.n_estimators"]) for c in children) == [
            ("full", "20"), ("full", "40"), ("minimal", "20"), ("minimal", "40")]
        assert all("val_log_loss" in c.data.metrics for c in children)
        driver = parent.data.tags["l2exp.worker"]  # the process that ran the sweep
        assert all(c.data.tags["l2exp.worker"] != driver for c in children)  # each job ran in a Ray worker
        versions = client.search_model_versions("name = 'l2exp-synthetic'")
        assert len(versions) == 4  # every job registered its model in the shared registry
        assert all(c.info.artifact_uri.startswith("mlflow-artifacts:") for c in children)  # proxied by the server
        assert list((workdir / "server-artifacts").rglob("MLmodel"))
        # the team's next steps, against the same server: promote the sweep's best child, backtest it
        env = {"MLFLOW_TRACKING_URI": uri}
        p = run_cli(["mode=promote", "tracking=server", f"mode.parent_run_id={parent.info.run_id}",
                     "mode.require_beat_baseline=false", "data.reader.n_snapshots=15000"], workdir, env=env)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        champion = client.get_model_version_by_alias("l2exp-synthetic", "champion")
        assert champion.run_id in {c.info.run_id for c in children}
        b = run_cli(["mode=backtest", "tracking=server", "data.reader.n_snapshots=15000"],
                    workdir, env=env)
        assert b.returncode == 0, b.stdout[-3000:] + b.stderr[-3000:]
        bt = client.search_runs([client.get_experiment_by_name("l2exp-backtest").experiment_id])[0]
        assert bt.data.tags["l2exp.model_run_id"] == champion.run_id
        assert "report.html" in {a.path for a in client.list_artifacts(bt.info.run_id)}
    finally:
        stop_server(proc)
