"""The out-of-sample guard: a backtest never decides on a row before the model's test start, and
refuses data that has no out-of-sample row for the model."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from l2exp.errors import UserError
from l2exp.modes.backtest import run_backtest
from l2exp.modes.promote import run_promote
from l2exp.modes.train import run_train
from tests.conftest import make_cfg

SMALL = ["data.reader.n_snapshots=30000", "features=minimal"]


def cfg(workdir, mode, *extra):
    return make_cfg([f"mode={mode}", f"workdir={workdir}", *SMALL, *extra])


def test_backtest_trades_only_rows_after_the_model_test_start(workdir):
    tr = run_train(cfg(workdir, "train", "model.n_estimators=40", "mode.progress=false"))
    run_promote(cfg(workdir, "promote", "mode.require_beat_baseline=false"))
    s = run_backtest(cfg(workdir, "backtest", "mode.progress=false"))
    start = tr["segments"]["test_start_ts"]
    assert s["model_test_start_ts"] == start and s["in_sample_rows"] == 0
    assert s["first_decision_ts"] >= start and s["snapshots_before_test_start_skipped"] > 0.75 * 30000
    orders = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{s['run_id']}/tables/orders.parquet"))
    fills = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{s['run_id']}/tables/fills.parquet"))
    pos = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{s['run_id']}/tables/positions.parquet"))
    assert len(orders) and (orders.submit_ts >= start).all() and (fills.ts >= start).all()
    assert pos.ts.min() >= start  # not one snapshot of the training or validation span is even replayed
    assert s["trades_coverage"] == 0.0 and s["queue_fallback"]  # synthetic data has no trade prints: said
    assert s["sharpe_period_s"] == 60 and len(s["pnl_by_session"]) == 1
    assert sum(r["pnl"] for r in s["pnl_by_session"]) == pytest.approx(s["pnl_net"])


def test_backtest_refuses_data_without_out_of_sample_rows(workdir):
    run_train(cfg(workdir, "train", "model.n_estimators=20", "mode.progress=false"))
    run_promote(cfg(workdir, "promote", "mode.require_beat_baseline=false"))
    # the same seeded generator, cut at 15,000 snapshots: all of it precedes the model's test start
    with pytest.raises(UserError, match="no out-of-sample row") as e:
        run_backtest(make_cfg(["mode=backtest", f"workdir={workdir}/other", "data.reader.n_snapshots=15000",
                               "features=minimal", "mode.progress=false"]))
    assert "test segment" in e.value.what


def test_walk_forward_oos_signal_backtests_every_fold(workdir):
    tr = run_train(cfg(workdir, "train", "split=walk_forward", "split.n_folds=3", "model.n_estimators=30",
                       "mode.progress=false"))
    s = run_backtest(cfg(workdir, "backtest", "mode.signal=oos", f"mode.model_run={tr['run_id']}",
                         "mode.model_uri=models:/l2exp-synthetic/1", "mode.progress=false"))
    oos = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{tr['run_id']}/oos/predictions.parquet"))
    assert sorted(oos.fold.unique()) == [0, 1, 2]
    assert s["signal"] == "oos" and s["in_sample_rows"] == 0
    assert s["model_test_start_ts"] == oos.fold_test_start_ts.min() < tr["segments"]["test_start_ts"]
    orders = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{s['run_id']}/tables/orders.parquet"))
    folds = pd.cut(orders.submit_ts, sorted(oos.fold_test_start_ts.unique()) + [2**62], right=False, labels=False)
    assert set(folds.dropna().astype(int)) == {0, 1, 2}  # decisions in every fold's test segment
    with pytest.raises(UserError, match="data digest"):  # OOS predictions of other data are refused
        run_backtest(make_cfg(["mode=backtest", f"workdir={workdir}/other", "data.reader.n_snapshots=30001",
                               "features=minimal", "mode.signal=oos", f"mode.model_run={tr['run_id']}",
                               "mode.model_uri=models:/l2exp-synthetic/1", "mode.progress=false"]))


def test_a_model_without_segments_is_refused_and_no_row_means_refusal():
    """One rule for backtest and replay (backtest.signals): no recorded segments -> refused; data that
    ends before the test start -> refused, naming both spans."""
    from types import SimpleNamespace

    import numpy as np

    from l2exp.backtest.signals import first_out_of_sample, test_start_of

    with pytest.raises(UserError, match="records no training/validation/test segments"):
        test_start_of(SimpleNamespace(meta={"segments": {}}), "models:/x@champion")
    assert test_start_of(SimpleNamespace(meta={"segments": {"test_start_ts": 5}}), "m") == 5
    ts = np.array([1, 2, 3], dtype=np.int64)
    assert first_out_of_sample(ts, 2, "data", "m", "k") == 1
    with pytest.raises(UserError, match="no out-of-sample row") as e:
        first_out_of_sample(ts, 4, "data=x S", "m", "mode.model_uri")
    assert e.value.where == "mode.model_uri"


def test_a_windowed_walk_forward_run_trades_each_prediction_on_its_own_snapshot(workdir):
    """Training reads the newest 20,000 of 30,000 rows (``mode.rows.max_rows``): its out-of-fold rows are
    numbered from the window's start. Every order of the oos backtest is decided on a snapshot the run
    predicted -- placed by timestamp; by row number they were traded 10,000 rows early."""
    tr = run_train(cfg(workdir, "train", "split=walk_forward", "split.n_folds=3", "model.n_estimators=30",
                       "mode.rows.max_rows=20000", "mode.progress=false"))
    s = run_backtest(cfg(workdir, "backtest", "mode.signal=oos", f"mode.model_run={tr['run_id']}",
                         "mode.model_uri=models:/l2exp-synthetic/1", "mode.progress=false"))
    oos = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{tr['run_id']}/oos/predictions.parquet"))
    orders = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{s['run_id']}/tables/orders.parquet"))
    assert len(orders) and s["in_sample_rows"] == 0
    assert set(orders.submit_ts) <= set(oos.timestamp)  # each decision on a snapshot that has its prediction
    assert orders.submit_ts.min() >= oos.fold_test_start_ts.min()
