"""Optuna sweeps from several workers on one study: two ``l2exp`` sweeps run at the same time against the
same RDB storage (SQLite here; PostgreSQL for a team) and the same study name. Every trial is kept once:
the study holds exactly the trials both asked for, numbered without gaps or repeats, each finished with
the validation metric its MLflow child run logged."""

from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
from mlflow import MlflowClient

from l2exp.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_two_workers_share_one_study_without_losing_or_duplicating_trials(workdir):
    storage = f"sqlite:///{workdir}/optuna.db"
    args = [sys.executable, "-m", "l2exp.cli", "mode=train", "hparams_search=lightgbm_optuna",
            "hydra.sweeper.n_trials=3", f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=shared",
            "data.reader.n_snapshots=20000", "features=minimal", "model.n_estimators=30"]
    env = dict(os.environ, L2EXP_WORKDIR=str(workdir), COLUMNS="200")
    # the store and feature cache first (one writer), then two sweeps at once on the same study
    subprocess.run([sys.executable, "-m", "l2exp.cli", "mode=features", "data.reader.n_snapshots=20000",
                    "features=minimal"], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, timeout=300)
    # each worker its own sampler seed: with one seed their random start-up trials would coincide
    procs = [subprocess.Popen([*args, f"hydra.sweeper.sampler.seed={k}"], cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for k in (1, 2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-4000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    client = MlflowClient(f"sqlite:///{workdir}/mlruns/mlflow.db")
    exp = client.get_experiment_by_name("l2exp-train")
    children = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    parents = {r.data.tags.get("mlflow.parentRunId") for r in children}
    assert len(children) == 6 and len(parents) == 2 and None not in parents  # each sweep nests its own three
    assert len({t.params["model.learning_rate"] for t in trials}) == 6  # no trial repeats another's parameters
    logged = sorted(round(r.data.metrics["val_macro_f1"], 12) for r in children)
    assert sorted(round(t.value, 12) for t in trials) == logged  # each trial's value is its run's metric
