"""mode=train / promote against a temporary MLflow store, asserted through the MLflow client."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from l2exp.errors import UserError
from l2exp.modes.promote import run_promote
from l2exp.modes.train import run_train
from l2exp.tracking.registry import load_bundle
from tests.conftest import last_summary, make_cfg, run_cli, sweep_runs

SMALL = ["data.reader.n_snapshots=20000", "features=minimal", "mode.progress=false"]


def train_cfg(workdir, *extra: str):
    return make_cfg(["mode=train", f"workdir={workdir}", *SMALL, *extra])


def client_for(workdir) -> MlflowClient:
    uri = f"sqlite:///{workdir}/mlruns/mlflow.db"
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri, registry_uri=uri)


def test_train_run_logs_everything(workdir):
    s = run_train(train_cfg(workdir, "model.n_estimators=60"))
    c = client_for(workdir)
    run = c.get_run(s["run_id"])
    assert run.data.params["model._target_"] == "l2exp.models.lightgbm.LightGBMModel"
    assert run.data.params["labels.horizon"] == "50"
    for k in ("test_accuracy", "test_macro_f1", "test_log_loss", "test_roc_auc", "test_precision_up",
              "test_recall_down", "baseline_majority_test_accuracy", "baseline_persistence_test_macro_f1",
              "baseline_best_test_log_loss", "usable_rows", "warmup_rows"):
        assert k in run.data.metrics, k
    assert run.data.tags["git_commit"] and run.data.tags["data_digest"] and run.data.tags["l2exp.model_version"]
    arts = {a.path for a in c.list_artifacts(run.info.run_id)} | \
        {a.path for a in c.list_artifacts(run.info.run_id, "plots")}
    assert {"config.yaml", "overrides.yaml", "features.json", "fold_metrics.csv", "plots/confusion_matrix.png",
            "plots/feature_importance.png"} <= arts
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.name == "synthetic" and inputs[0].dataset.digest
    tags = {t.key: t.value for t in inputs[0].tags}
    assert int(tags["data.rows"]) == 20_000 and tags["data.rejected"] == "0"
    mv = c.get_model_version("l2exp-synthetic", s["model_version"])
    assert mv.run_id == s["run_id"]
    # skill on the selection segment; on these 20k snapshots the test segment's class balance shifts (flat
    # 48 % -> 82 %), and the test baseline is that segment's own climatology, known in hindsight
    assert s["val_metrics"]["val_log_loss"] < s["baseline_metrics"]["baseline_best_val_log_loss"]
    assert s["beats_baseline"]


def test_same_config_reproduces_metrics(workdir):
    a = run_train(train_cfg(workdir, "model.n_estimators=40"))
    b = run_train(train_cfg(workdir, "model.n_estimators=40"))
    assert a["test_metrics"] == b["test_metrics"]


def test_experiments_open_as_model_training_in_the_ui(workdir):
    run_train(train_cfg(workdir, "model.n_estimators=10"))
    exp = client_for(workdir).get_experiment_by_name("l2exp-train")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


def test_walk_forward_reports_each_fold(workdir):
    s = run_train(train_cfg(workdir, "split=walk_forward", "split.n_folds=2", "model.n_estimators=30"))
    assert s["folds"] == 2
    c = client_for(workdir)
    assert len(c.get_metric_history(s["run_id"], "test_accuracy")) == 1  # the mean over folds, once
    folds = c.get_metric_history(s["run_id"], "fold_test_accuracy")
    assert sorted(m.step for m in folds) == [0, 1]
    # what runs are compared and promoted on (the run's latest value) is the mean, not the last fold
    run = c.get_run(s["run_id"])
    for key in ("val_log_loss", "test_accuracy"):
        section = s["val_metrics"] if key.startswith("val_") else s["test_metrics"]
        assert run.data.metrics[key] == pytest.approx(section[key])
    assert run.data.metrics["test_accuracy"] == pytest.approx(sum(m.value for m in folds) / 2)
    csv = mlflow.artifacts.load_text(f"runs:/{s['run_id']}/fold_metrics.csv")
    assert csv.count("fold") >= 3


def test_catboost_and_regression(workdir):
    s = run_train(train_cfg(workdir, "model=catboost", "model.iterations=40", "labels=regression"))
    assert s["task"] == "regression" and {"test_rmse", "test_ic"} <= set(s["test_metrics"])


def test_promote_then_load_by_alias_and_predict(workdir):
    run_train(train_cfg(workdir, "model.n_estimators=20"))
    best = run_train(train_cfg(workdir, "model.n_estimators=120"))
    s = run_promote(make_cfg(["mode=promote", f"workdir={workdir}"]))
    assert s["metric"] == "val_log_loss" and s["direction"] == "min" and not s["selected_on_test"]
    c = client_for(workdir)
    mv = c.get_model_version_by_alias("l2exp-synthetic", "champion")
    assert str(mv.version) == str(s["version"]) and mv.tags["l2exp.selected_on"] == "val_log_loss"
    runs = {r: c.get_run(r).data.metrics["val_log_loss"] for r in (best["run_id"], s["run_id"])}
    assert runs[s["run_id"]] <= min(runs.values())
    # fresh features -> predictions, through pyfunc and through the contract-enforcing loader
    pyfunc = mlflow.pyfunc.load_model("models:/l2exp-synthetic@champion")
    bundle = load_bundle("models:/l2exp-synthetic@champion", levels_available=10)
    from l2exp.modes.build import feature_table as build_feature_table

    ft = build_feature_table(train_cfg(workdir))
    X = ft.features[ft.ready.to_numpy()].tail(50)
    proba = bundle.predict_proba(X)
    assert proba.shape == (50, 3) and np.allclose(proba.sum(1), 1)
    assert len(pyfunc.predict(X)) == 50
    assert bundle.feature_set.names == list(X.columns) and bundle.classes == ["down", "flat", "up"]
    with pytest.raises(UserError, match="needs more book levels"):
        load_bundle("models:/l2exp-synthetic@champion", levels_available=3)


def test_promote_refuses_a_model_that_does_not_beat_the_baseline(workdir):
    run_train(train_cfg(workdir, "model.n_estimators=5", "model.learning_rate=0.001"))
    with pytest.raises(UserError, match="does not beat"):
        run_promote(make_cfg(["mode=promote", f"workdir={workdir}", "mode.metric=val_accuracy"]))


def test_bad_configs_are_clear_errors(workdir):
    with pytest.raises(UserError, match="horizon"):
        run_train(train_cfg(workdir, "labels.horizon=0"))
    with pytest.raises(UserError, match="empty"):
        # 0.1% of the span is shorter than the label horizon: every training row is purged
        run_train(train_cfg(workdir, "split.train=0.001", "split.valid=0.499", "split.test=0.5"))
    proc = run_cli(["mode=train", "model=xgboost"], workdir)
    assert proc.returncode == 2 and "no option 'xgboost' in group model" in proc.stderr
    proc = run_cli(["mode=train", "labels.horizon=-3", *SMALL], workdir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "labels.horizon must be > 0" in proc.stderr


@pytest.mark.slow
def test_multirun_is_one_parent_with_a_child_per_job(workdir):
    proc = run_cli(["-m", "mode=train", "model=lightgbm,catboost", "features=minimal,full",
                    "data.reader.n_snapshots=15000"], workdir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent, children = sweep_runs(client_for(workdir))
    assert len(children) == 4
    assert {(r.data.tags["l2exp.model"], r.data.tags["l2exp.features"]) for r in children} == {
        ("LightGBMModel", "minimal"), ("LightGBMModel", "full"), ("CatBoostModel", "minimal"),
        ("CatBoostModel", "full")}
    # the sweep ends with its comparison (it ended with a bare parent id): the jobs best first, the link to
    # MLflow's comparison of exactly these runs, and the best job's numbers on the parent
    out = proc.stdout
    assert "sweep: 4 job(s), best first by val_log_loss (min)" in out and "compare these runs: http" in out
    assert [f"sweep job #{k}:" in out for k in range(4)] == [True] * 4 and "(3 job(s) before it, 0 failed" in out
    best = min(children, key=lambda r: r.data.metrics["val_log_loss"])
    parent = client_for(workdir).get_run(parent.info.run_id)
    assert parent.data.tags["l2exp.best_run"] == best.info.run_id
    assert parent.data.metrics["best_val_log_loss"] == best.data.metrics["val_log_loss"]
    assert all(r.info.run_id in out.split("compare these runs: ", 1)[1].split()[0].replace("%22", '"')
               for r in children)
    table = out.split("best first by val_log_loss (min)", 1)[1]
    assert table.index(best.info.run_name[:30]) < min(table.index(r.info.run_name[:30]) for r in children
                                                      if r.info.run_id != best.info.run_id)


def test_optuna_sweep_of_three_trials(workdir):
    proc = run_cli(["mode=train", "hparams_search=lightgbm_optuna", "hydra.sweeper.n_trials=3",
                    "data.reader.n_snapshots=15000", "features=minimal"], workdir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Best value" in proc.stdout + proc.stderr
    c = client_for(workdir)
    runs = c.search_runs([c.get_experiment_by_name("l2exp-train").experiment_id])
    assert sum(1 for r in runs if r.data.tags.get("mlflow.parentRunId")) == 3


def test_train_summary_json(workdir):
    proc = run_cli(["mode=train", *SMALL, "model.n_estimators=20"], workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = last_summary(workdir)
    assert s["run_id"] and s["model_name"] == "l2exp-synthetic" and s["model_version"] == "1"
    assert "test_macro_f1" in s["test_metrics"] and "baseline_majority_test_macro_f1" in s["baseline_metrics"]


def test_train_scores_validation_and_test_and_records_segments(workdir):
    s = run_train(train_cfg(workdir, "model.n_estimators=60"))
    assert s["selection"]["metric"] == "val_log_loss" and isinstance(s["beats_baseline"], bool)
    for k in ("val_log_loss", "val_macro_f1", "test_log_loss", "test_macro_f1"):
        assert k in s["val_metrics"] or k in s["test_metrics"]
    for k in ("baseline_best_val_log_loss", "baseline_majority_test_accuracy", "baseline_persistence_val_macro_f1"):
        assert k in s["baseline_metrics"]
    seg = s["segments"]
    assert seg["train_start_ts"] < seg["train_end_ts"] < seg["valid_end_ts"] < seg["test_start_ts"]
    assert seg["label_end_max_ts"] < seg["test_start_ts"]  # no training/validation label reaches the test rows
    bundle = load_bundle(f"models:/l2exp-synthetic/{s['model_version']}")
    assert bundle.meta["segments"] == seg
    oos = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{s['run_id']}/oos/predictions.parquet"))
    assert (oos.timestamp >= seg["test_start_ts"]).all()
    assert len(oos) == client_for(workdir).get_run(s["run_id"]).data.metrics["test_rows"]
    assert {"row", "timestamp", "symbol", "fold", "fold_test_start_ts", "y", "p_down", "p_flat", "p_up"} <= set(oos)
    assert np.allclose(oos[["p_down", "p_flat", "p_up"]].sum(axis=1), 1)


def test_promote_refuses_a_test_metric_unless_allowed_and_flags_it(workdir):
    run_train(train_cfg(workdir, "model.n_estimators=60"))
    with pytest.raises(UserError, match="untouched holdout"):
        run_promote(make_cfg(["mode=promote", f"workdir={workdir}", "mode.metric=test_log_loss"]))
    s = run_promote(make_cfg(["mode=promote", f"workdir={workdir}", "mode.metric=test_log_loss",
                              "allow_test_selection=true", "mode.require_beat_baseline=false"]))
    assert s["selected_on_test"] and s["metric"] == "test_log_loss"
    mv = client_for(workdir).get_model_version("l2exp-synthetic", s["version"])
    assert mv.tags["l2exp.selected_on_test"] == "true"
    proc = run_cli(["-m", "mode=train", *SMALL, "optimized_metric=test_macro_f1", "model.n_estimators=5"], workdir)
    assert proc.returncode != 0 and "untouched holdout" in proc.stderr and "Traceback" not in proc.stderr


def test_permuted_label_control_on_the_synthetic_book(workdir):
    """The leakage control on the shipped default (200k snapshots): with shuffled training labels
    and nothing else changed, neither validation nor test may beat the baseline -- and the real
    model, same config, does. Such a run is never promoted."""
    control = run_train(make_cfg(["mode=train", f"workdir={workdir}", "mode.progress=false", "labels.permute=true"]))
    assert control["permuted_labels"] and not control["beats_baseline"] and not control["test_beats_baseline"]
    real = run_train(make_cfg(["mode=train", f"workdir={workdir}", "mode.progress=false"]))
    assert real["beats_baseline"] and real["test_beats_baseline"]
    s = run_promote(make_cfg(["mode=promote", f"workdir={workdir}", "mode.require_beat_baseline=false"]))
    assert s["run_id"] == real["run_id"] and s["controls_excluded"] == 1
