"""Optuna sweeps from several workers on one study: two ``l2exp`` sweeps run at the same time against the
same RDB storage (SQLite here; PostgreSQL for a team) and the same study name. Every trial is kept once:
the study holds exactly the trials both asked for, numbered without gaps or repeats, each finished with
the validation metric its MLflow child run logged."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import optuna
import pytest
from mlflow import MlflowClient

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_two_workers_share_one_study_without_losing_or_duplicating_trials(workdir):
    storage = f"sqlite:///{workdir}/optuna.db"
    args = ["mode=train", "hparams_search=lightgbm_optuna", "hydra.sweeper.n_trials=3",
            f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=shared", "data.reader.n_snapshots=20000",
            "features=minimal", "model.n_estimators=30"]
    # the store and feature cache first (one writer), then two sweeps at once on the same study
    first = run_cli(["mode=features", "data.reader.n_snapshots=20000", "features=minimal"], workdir, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    # each worker its own sampler seed: with one seed their random start-up trials would coincide
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda k: run_cli([*args, f"hydra.sweeper.sampler.seed={k}"], workdir), (1, 2)))
    for p in done:
        assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
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
