"""Whole modes as a user runs them: pipeline, backtest on a real recording, a backtest sweep."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.conftest import last_summary, needs_shared, run_cli

SMALL = ["data.reader.n_snapshots=30000"]


def client(workdir) -> MlflowClient:
    uri = f"sqlite:///{workdir}/mlruns/mlflow.db"
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


@pytest.mark.slow
def test_pipeline_is_one_parent_with_step_children_and_reuses_outputs(workdir):
    proc = run_cli(["mode=pipeline", *SMALL, "mode.promote.require_beat_baseline=false"], workdir, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    first = last_summary(workdir)
    assert not first["steps"]["train"]["reused"] and first["steps"]["backtest"]["run_id"]
    c = client(workdir)
    exp = c.get_experiment_by_name("l2exp-pipeline")
    runs = c.search_runs([exp.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == first["parent_run_id"]]
    kinds = {r.data.tags.get("l2exp.step") or r.data.tags.get("l2exp.mode") for r in children}
    assert {"ingest", "features", "train", "promote", "backtest"} <= kinds, kinds
    proc = run_cli(["mode=pipeline", *SMALL, "mode.promote.require_beat_baseline=false"], workdir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = last_summary(workdir)
    assert again["steps"]["ingest"]["reused"] and again["steps"]["features"]["reused"]
    assert again["steps"]["train"]["reused"] and again["steps"]["train"]["run_id"] == first["steps"]["train"]["run_id"]


@pytest.mark.slow
@needs_shared("bitmex/orderbook10_2020-03-10.csv.gz", "bitmex/trades_2020-03-10.csv.gz")
def test_backtest_on_bitmex_with_the_champion(workdir):
    """The README's real-data steps: train, promote (on validation), backtest out of sample only."""
    for args in (["mode=train", "data=bitmex_ob10", "features=minimal", "model.n_estimators=60"],
                 ["mode=promote", "data=bitmex_ob10", "mode.require_beat_baseline=false"],
                 ["mode=backtest", "data=bitmex_ob10"]):
        proc = run_cli(args, workdir, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    s = last_summary(workdir)
    assert s["model_uri"] == "models:/l2exp-bitmex_ob10@champion" and s["symbol"] == "XBTUSD"
    assert s["in_sample_rows"] == 0 and s["first_decision_ts"] >= s["model_test_start_ts"]
    # the trades file ends at 18:37:02, the model's test segment starts later: no print covers it, and
    # the backtest says so instead of pretending its queue model saw prints
    assert s["model_test_start_ts"] > pd.Timestamp("2020-03-10 18:37:02.9", tz="UTC").value
    assert s["n_trades"] == 0 and s["trades_coverage"] == 0.0 and "displayed size" in s["queue_fallback"]
    assert s["n_events"] == s["n_snapshots"] + s["n_trades"]
    for k in ("n_orders", "n_fills", "pnl_net", "fees", "sharpe", "max_drawdown", "risk_blocks", "pnl_by_day"):
        assert k in s
    assert s["n_fills"] > 0
    c = client(workdir)
    run = c.get_run(s["run_id"])
    assert run.data.tags["l2exp.model_run_id"] == s["model_run_id"] and run.data.metrics["trades_coverage"] == 0.0
    arts = {a.path for d in ("", "tables", "plots") for a in c.list_artifacts(s["run_id"], d or None)}
    assert {"tables/fills.parquet", "tables/orders.parquet", "tables/positions.parquet", "tables/pnl_by_day.csv",
            "tables/pnl_by_session.csv", "plots/equity_drawdown.png", "plots/fills_over_book.png"} <= arts
    fills = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{s['run_id']}/tables/fills.parquet"))
    pos = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{s['run_id']}/tables/positions.parquet"))
    assert (fills.side * fills.qty).sum() == pos.position.iloc[-1]
    assert pos.ts.min() >= s["model_test_start_ts"] and (fills.ts >= s["model_test_start_ts"]).all()


@pytest.mark.slow
@needs_shared("bitmex/orderbook10_2020-03-10.csv.gz", "bitmex/trades_2020-03-10.csv.gz")
def test_bitmex_walk_forward_oos_backtest_and_permuted_label_control(workdir):
    """On the real recording: the leakage control does not beat the baseline (validation or test) while
    the same model on true labels does; the stitched walk-forward signal trades every fold out of sample
    with the trade prints where they exist."""
    control = run_cli(["mode=train", "data=bitmex_ob10", "labels.permute=true", "mode.progress=false"], workdir)
    assert control.returncode == 0, control.stderr[-3000:]
    c = last_summary(workdir)
    assert c["permuted_labels"] and not c["beats_baseline"] and not c["test_beats_baseline"]
    proc = run_cli(["mode=train", "data=bitmex_ob10", "split=walk_forward", "mode.progress=false"], workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wf = last_summary(workdir)
    assert wf["beats_baseline"] and wf["test_beats_baseline"] and wf["folds"] == 4
    proc = run_cli(["mode=backtest", "data=bitmex_ob10", "mode.signal=oos", f"mode.model_run={wf['run_id']}",
                    f"mode.model_uri=models:/l2exp-bitmex_ob10/{wf['model_version']}"], workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = last_summary(workdir)
    assert s["signal"] == "oos" and s["in_sample_rows"] == 0 and s["first_decision_ts"] >= s["model_test_start_ts"]
    assert s["model_test_start_ts"] < wf["segments"]["test_start_ts"]  # earlier folds widen the traded span
    assert 0.2 < s["trades_coverage"] < 0.8 and s["n_trades"] > 0 and s["trades_uncovered"]


@pytest.mark.slow
def test_backtest_sweep_over_risk_and_latency(workdir):
    for args in (["mode=train", *SMALL, "features=minimal", "model.n_estimators=30"],
                 ["mode=promote", "mode.require_beat_baseline=false"]):
        assert run_cli([*args, *SMALL], workdir).returncode == 0
    proc = run_cli(["-m", "mode=backtest", "risk=conservative,aggressive", "execution.latency_ms=0,20", *SMALL],
                   workdir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    c = client(workdir)
    runs = c.search_runs([c.get_experiment_by_name("l2exp-backtest").experiment_id])
    parent = [r for r in runs if r.data.tags.get("l2exp.sweep") == "parent"]
    assert len(parent) == 1
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert sorted((r.data.params["risk.name"], r.data.params["execution.latency_ms"]) for r in kids) == [
        ("aggressive", "0"), ("aggressive", "20"), ("conservative", "0"), ("conservative", "20")]
