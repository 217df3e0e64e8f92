"""Whole pipelines on books rebuilt from real Binance depth captures: USD-M (linear, trades from the
capture itself for queue position) and COIN-M (inverse, 100 USD contracts, PnL and fees in BTC,
checked fill by fill against the contract arithmetic)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.conftest import last_summary, needs_shared, run_cli

PIPELINE = ["mode=pipeline", "mode.promote.require_beat_baseline=false", "mode.ingest_step.progress=false"]


@pytest.mark.slow
@needs_shared("binance_capture/usdm_btcusdt_20240808.gz")
def test_usdm_capture_pipeline_end_to_end(workdir):
    proc = run_cli([*PIPELINE, "data=binance_usdm_btcusdt"], workdir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = last_summary(workdir)["steps"]
    assert s["ingest"]["accepted"] > 6000 and s["ingest"]["rejected"] == 4  # 4 updates older than the snapshot
    bt = s["backtest"]
    assert bt["n_snapshots"] > 1000 and bt["in_sample_rows"] == 0
    assert bt["trades_coverage"] > 0.9  # the capture's own @trade stream
    assert bt["n_fills"] > 0  # risk gates in lots: 10 lots of 0.001 BTC, not 10 BTC, at the touch


@pytest.mark.slow
@needs_shared("binance_capture/cm_btcusd_perp_20240808.gz", "binance_capture/cm_btcusd_perp_20240809.gz")
def test_coinm_capture_backtests_as_an_inverse_contract(workdir):
    proc = run_cli([*PIPELINE, "data=binance_cm_btcusd_perp"], workdir, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_id = last_summary(workdir)["steps"]["backtest"]["run_id"]
    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlruns/mlflow.db")
    fills = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/tables/fills.parquet"))
    assert len(fills) > 0
    run = mlflow.get_run(run_id)
    # fee of a fill = contracts x 100 USD / price (its BTC value) x the venue's rate (taker 5 bps, maker 2 bps)
    rate = np.where(fills.maker > 0, 2.0, 5.0) * 1e-4
    np.testing.assert_allclose(fills.fee, fills.qty * 100.0 / fills.price * rate, rtol=1e-9)
    assert run.data.metrics["fees"] == pytest.approx(fills.fee.sum(), rel=1e-9)
    assert run.data.params["data.instruments.BTCUSD_PERP.contract"] == "inverse"
