"""Whole modes as a user runs them: pipeline, backtest on a real recording, a backtest sweep."""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow import MlflowClient

from tests.conftest import last_summary, needs_shared, run_cli

SMALL = ["data.reader.n_snapshots=30000"]


def client(workdir) -> MlflowClient:
    uri = f"sqlite:///{workdir}/mlruns/mlflow.db"
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


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


@needs_shared("bitmex/orderbook10_2020-03-10.csv.gz", "bitmex/trades_2020-03-10.csv.gz")
def test_backtest_on_bitmex_with_the_champion(workdir):
    for args in (["mode=train", "data=bitmex_ob10", "features=minimal", "model.n_estimators=60"],
                 ["mode=promote", "data=bitmex_ob10", "mode.require_beat_baseline=false"],
                 ["mode=backtest", "data=bitmex_ob10"]):
        proc = run_cli(args, workdir, timeout=600)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    s = last_summary(workdir)
    assert s["model_uri"] == "models:/l2exp-bitmex_ob10@champion" and s["symbol"] == "XBTUSD"
    assert s["n_trades"] == 8464 and s["n_events"] == s["n_snapshots"] + s["n_trades"]
    for k in ("n_orders", "n_fills", "pnl_net", "fees", "sharpe", "max_drawdown", "risk_blocks"):
        assert k in s
    assert s["n_fills"] > 0
    c = client(workdir)
    run = c.get_run(s["run_id"])
    assert run.data.tags["l2exp.model_run_id"] == s["model_run_id"]
    arts = {a.path for d in ("", "tables", "plots") for a in c.list_artifacts(s["run_id"], d or None)}
    assert {"tables/fills.parquet", "tables/orders.parquet", "tables/positions.parquet",
            "plots/equity_drawdown.png", "plots/fills_over_book.png"} <= arts
    fills = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{s['run_id']}/tables/fills.parquet"))
    pos = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{s['run_id']}/tables/positions.parquet"))
    assert (fills.side * fills.qty).sum() == pos.position.iloc[-1]


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
