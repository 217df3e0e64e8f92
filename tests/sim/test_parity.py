"""Sim == backtest, by running both: the same recording, model, risk and execution config give the
same fills (timestamp, price, quantity, side) and the same pnl_net -- with trade prints driving the
queue, and with latency jitter drawn from the compiled, seeded generator."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from l2exp.modes.backtest import run_backtest
from l2exp.modes.promote import run_promote
from l2exp.modes.sim import run_sim
from l2exp.modes.train import run_train
from l2exp.summary import output_dir
from tests.conftest import make_cfg, needs_shared

COLS = ["ts", "price", "qty", "side"]


def both(workdir, common: list[str]) -> tuple[dict, pd.DataFrame, dict, pd.DataFrame]:
    bt = run_backtest(make_cfg(["mode=backtest", f"workdir={workdir}", "mode.progress=false", *common]))
    bt_fills = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{bt['run_id']}/tables/fills.parquet"))
    sim = run_sim(make_cfg(["mode=sim", f"workdir={workdir}", "feed=replay", *common]))
    sim_fills = pd.read_parquet(output_dir() / "sim" / "fills.parquet")
    return bt, bt_fills[COLS].reset_index(drop=True), sim, sim_fills[COLS].reset_index(drop=True)


@pytest.mark.parametrize("extra", [[], ["execution.latency_jitter=0.8", "execution=passive"]])
def test_replay_sim_equals_backtest_on_the_synthetic_book(workdir, extra):
    common = ["data.reader.n_snapshots=20000", "features=minimal", *extra]
    run_train(make_cfg(["mode=train", f"workdir={workdir}", *common, "model.n_estimators=40", "mode.progress=false"]))
    run_promote(make_cfg(["mode=promote", f"workdir={workdir}", "mode.require_beat_baseline=false"]))
    bt, bf, sim, sf = both(workdir, common)
    assert len(bf) >= 5 and sim["n_fills"] == bt["n_fills"] == len(bf)
    pd.testing.assert_frame_equal(sf, bf)
    assert sim["pnl_net"] == pytest.approx(bt["pnl_net"], rel=1e-12, abs=1e-12)
    assert sim["snapshots"] == bt["n_snapshots"]
    again = run_backtest(make_cfg(["mode=backtest", f"workdir={workdir}", "mode.progress=false", *common]))
    assert again["pnl_net"] == bt["pnl_net"] and again["n_fills"] == bt["n_fills"]  # jitter: seeded, reproducible


@needs_shared("bitmex/orderbook10_2020-03-10.csv.gz", "bitmex/trades_2020-03-10.csv.gz")
def test_replay_sim_equals_backtest_on_bitmex_with_trade_prints(workdir):
    """A test segment that the trades file covers (train 30 %, valid 10 %, test 60 %), the prints fed to
    both (their queue bookkeeping runs on every print), XBTUSD as the inverse contract it is (XBT PnL).
    (1-lot passive orders behind BitMEX's ~10^5-contract touch queues never fill: the passive queue
    parity is the synthetic case above.)"""
    common = ["data=bitmex_ob10", "features=minimal", "strategy.threshold=0.05", "strategy.base_size=20"]
    run_train(make_cfg(["mode=train", f"workdir={workdir}", *common, "split.train=0.3", "split.valid=0.1",
                        "split.test=0.6", "model.n_estimators=60", "mode.progress=false"]))
    run_promote(make_cfg(["mode=promote", f"workdir={workdir}", "data=bitmex_ob10",
                          "mode.require_beat_baseline=false"]))
    bt, bf, sim, sf = both(workdir, common)
    assert bt["n_trades"] > 1000 and sim["trades"] == bt["n_trades"] and bt["trades_coverage"] > 0.3
    assert len(bf) > 5 and bt["settle_currency"] == sim["settle_currency"] == "XBT"
    pd.testing.assert_frame_equal(sf, bf)
    assert sim["pnl_net"] == pytest.approx(bt["pnl_net"], rel=1e-12, abs=1e-15)
    assert np.isfinite(bt["pnl_net_quote"]) and abs(bt["pnl_net"]) < 1.0  # XBT, not USD x price


@needs_shared("binance_capture/cm_btcusd_perp_20240808.gz", "binance_capture/cm_btcusd_perp_20240809.gz")
def test_replay_sim_equals_backtest_on_a_rebuilt_coinm_book_with_its_stored_trades(workdir):
    """Books rebuilt from the COIN-M depth capture, the capture's own trades read from the store by both,
    BTCUSD_PERP as the inverse 100-USD contract it is (PnL in BTC)."""
    common = ["data=binance_cm_btcusd_perp", "features=minimal"]
    run_train(make_cfg(["mode=train", f"workdir={workdir}", *common, "model.n_estimators=40", "mode.progress=false"]))
    run_promote(make_cfg(["mode=promote", f"workdir={workdir}", "data=binance_cm_btcusd_perp",
                          "mode.require_beat_baseline=false"]))
    bt, bf, sim, sf = both(workdir, common)
    assert bt["n_trades"] > 1000 and sim["trades"] == bt["n_trades"]
    assert len(bf) > 5 and bt["settle_currency"] == sim["settle_currency"] == "BTC" and bt["contract"] == "inverse"
    pd.testing.assert_frame_equal(sf, bf)
    assert sim["pnl_net"] == pytest.approx(bt["pnl_net"], rel=1e-12, abs=1e-15)
