"""Funding of perpetuals, by hand (``l2exp/backtest/funding.py``): payment = -position x n(mark) x rate in the
settlement currency (n = m p linear, m / p inverse; a positive rate: longs pay), booked at the funding time
on the position held at that instant, included in equity and ``pnl_net``; never a silent zero."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from l2exp.backtest.funding import Funding
from l2exp.backtest.instruments import Instrument, instrument_for
from l2exp.backtest.run import backtest_book, level_major
from l2exp.backtest.strategies.signal_target import SignalTarget
from l2exp.errors import UserError
from l2exp.modes.build import store_with_data as open_store
from l2exp.modes.sim import replay_market_events
from l2exp.modes.trading import instrument_of, trading_params
from l2exp.sim.broker import PaperBroker
from tests.backtest.test_engine import NO_RISK, ex
from tests.conftest import make_cfg, needs_shared

MIDNIGHT = int(pd.Timestamp("2023-01-02T00:00:00Z").value)  # a Binance funding time (00:00 UTC)
MS = 1_000_000
HOUR = 3_600_000 * MS


def flat_book(ts: list[int], bid: float, ask: float, symbol: str = "X") -> pd.DataFrame:
    """One unchanging 3-level book at each time in ``ts`` (huge sizes: market orders fill at the touch)."""
    tick = ask - bid
    rows = []
    for t in ts:
        r = {"timestamp": t, "symbol": symbol, "exchange": "E"}
        for i in range(3):
            r[f"bid_price_{i + 1}"], r[f"bid_size_{i + 1}"] = bid - i * tick, 1e9
            r[f"ask_price_{i + 1}"], r[f"ask_size_{i + 1}"] = ask + i * tick, 1e9
        rows.append(r)
    return pd.DataFrame(rows)


def hold(inst: Instrument, ts: list[int], signal: list[float], bid: float, ask: float, qty: float, **fees):
    """Market orders to sign(signal) x qty at every snapshot (zero latency), on a flat book."""
    e = ex(tick_size=round(ask - bid, 10), **fees)
    return backtest_book(flat_book(ts, bid, ask, inst.symbol), np.asarray(signal, float), None, e,
                         SignalTarget(threshold=0.5, decision_ms=0, base_size=qty), NO_RISK, 3, inst)


def usdm(**funding) -> Instrument:
    return Instrument("BTCUSDT", "linear", 1.0, "USDT", "USDT", funding=funding or None, perpetual=True)


def test_linear_long_pays_at_midnight():
    """Long 2 BTCUSDT (bought at the ask 100.1) over 00:00 UTC, mark 100.0, rate +1 bp: pays 2 x 100 x 1e-4 =
    0.02 USDT; pnl_net = trading (2 x (100.0 - 100.1) = -0.2) - fees (0) + funding (-0.02) = -0.22."""
    ts = [MIDNIGHT - 2 * HOUR, MIDNIGHT - HOUR, MIDNIGHT + HOUR, MIDNIGHT + 2 * HOUR]
    res = hold(usdm(rate_bps=1.0, every_h=8, offset_h=0), ts, [1, 1, 1, 1], 99.9, 100.1, 2.0)
    f = res.funding
    assert list(f.ts) == [MIDNIGHT] and f.position.iloc[0] == 2.0 and f.mark.iloc[0] == 100.0
    assert f.payment.iloc[0] == pytest.approx(-0.02, rel=1e-12)
    m = res.metrics()
    assert m["funding"] == pytest.approx(-0.02, rel=1e-12)
    assert m["pnl_net"] == pytest.approx(-0.22, rel=1e-12)
    assert m["pnl_net"] == pytest.approx(m["pnl_gross"] - m["fees"] + m["funding"], rel=1e-12)
    # the equity shows the payment from the first snapshot after it, not before
    assert res.equity[1] == pytest.approx(-0.2, rel=1e-12) and res.equity[2] == pytest.approx(-0.22, rel=1e-12)


def test_linear_with_fees_adds_up():
    """Same hold with a 4 bps taker fee: fee 2 x 100.1 x 4e-4 = 0.08008; pnl_net = -0.2 - 0.08008 - 0.02."""
    ts = [MIDNIGHT - HOUR, MIDNIGHT + HOUR]
    res = hold(usdm(rate_bps=1.0), ts, [1, 1], 99.9, 100.1, 2.0, taker_fee_bps=4.0)
    m = res.metrics()
    assert m["fees"] == pytest.approx(0.08008, rel=1e-12)
    assert m["pnl_net"] == pytest.approx(-0.2 - 0.08008 - 0.02, rel=1e-12)
    assert m["pnl_gross"] == pytest.approx(-0.2, rel=1e-12)


def test_inverse_coinm_short_receives_across_midnight():
    """Short 10 BTCUSD_PERP (100 USD each), mark 40,000, rate +1 bp: the short receives 10 x 100 / 40,000 x 1e-4
    = 2.5e-6 BTC. The same with a negative rate pays it."""
    perp = Instrument("BTCUSD_PERP", "inverse", 100.0, "USD", "BTC", funding={"rate_bps": 1.0}, perpetual=True)
    ts = [MIDNIGHT - HOUR, MIDNIGHT - 1, MIDNIGHT + HOUR]
    res = hold(perp, ts, [-1, -1, -1], 39999.9, 40000.1, 10.0)
    assert res.position[-1] == -10.0
    assert res.funding.payment.iloc[0] == pytest.approx(2.5e-6, rel=1e-9)
    assert res.metrics()["funding"] == pytest.approx(2.5e-6, rel=1e-9)
    neg = Instrument("BTCUSD_PERP", "inverse", 100.0, "USD", "BTC", funding={"rate_bps": -1.0}, perpetual=True)
    assert hold(neg, ts, [-1, -1, -1], 39999.9, 40000.1, 10.0).metrics()["funding"] == pytest.approx(-2.5e-6,
                                                                                                    rel=1e-9)


def test_position_at_the_funding_instant_pays():
    """Long 1, then flipped to short 1 by a market order. Flipped 1 ms before 00:00: the short receives 1 x 100
    x 1 bp = +0.01. Flipped by a decision *at* 00:00:00.000: funding comes before the events of its instant, so
    the long pays -0.01."""
    inst = usdm(rate_bps=1.0)
    before = hold(inst, [MIDNIGHT - HOUR, MIDNIGHT - MS, MIDNIGHT + HOUR], [1, -1, -1], 99.9, 100.1, 1.0)
    assert before.funding.position.iloc[0] == -1.0 and before.funding.payment.iloc[0] == pytest.approx(0.01)
    at = hold(inst, [MIDNIGHT - HOUR, MIDNIGHT, MIDNIGHT + HOUR], [1, -1, -1], 99.9, 100.1, 1.0)
    assert at.funding.position.iloc[0] == 1.0 and at.funding.payment.iloc[0] == pytest.approx(-0.01)
    assert at.position[1] == -1.0  # the flip itself happened at that snapshot


def test_bitmex_schedule_three_payments_a_day():
    f = Funding(rate_bps=1.0, every_h=8, offset_h=4)
    ts, rate = f.events(MIDNIGHT, MIDNIGHT + 24 * HOUR - 1, "XBTUSD")
    assert [pd.Timestamp(t, tz="UTC").hour for t in ts] == [4, 12, 20] and np.all(rate == 1e-4)


def test_perpetual_without_funding_is_not_a_silent_zero():
    inst = Instrument("BTCUSDT", "linear", 1.0, "USDT", "USDT", perpetual=True)
    res = hold(inst, [MIDNIGHT - HOUR, MIDNIGHT + HOUR], [1, 1], 99.9, 100.1, 2.0)
    assert inst.funding_status == "not modelled" and np.isnan(res.metrics()["funding"])
    spot = Instrument("BTCUSDT", "linear", 1.0, "USDT", "USDT")
    assert spot.funding_status == "none"
    assert hold(spot, [MIDNIGHT - HOUR, MIDNIGHT + HOUR], [1, 1], 99.9, 100.1, 2.0).metrics()["funding"] == 0.0


def test_funding_history_file(tmp_path):
    """The venue's history (Binance /fapi/v1/fundingRate columns) drives the times and rates; a file that does
    not cover the run is refused, not read as zero funding."""
    p = tmp_path / "funding.csv"
    times = [MIDNIGHT - 8 * HOUR, MIDNIGHT, MIDNIGHT + 8 * HOUR]
    pd.DataFrame({"symbol": "BTCUSDT", "fundingTime": [t // MS for t in times],
                  "fundingRate": [0.0001, -0.0003, 0.0002]}).to_csv(p, index=False)
    spec = {"path": str(p), "timestamp": "fundingTime", "rate": "fundingRate", "symbol": "symbol"}
    inst = instrument_for({"BTCUSDT": {"contract": "linear", "quote": "USDT", "funding": spec}}, "BTCUSDT")
    res = hold(inst, [MIDNIGHT - HOUR, MIDNIGHT + HOUR], [1, 1], 99.9, 100.1, 2.0)
    assert list(res.funding.ts) == [MIDNIGHT]
    assert res.funding.payment.iloc[0] == pytest.approx(-2 * 100.0 * -0.0003, rel=1e-12)  # a long receives
    late = [MIDNIGHT + 30 * HOUR, MIDNIGHT + 50 * HOUR]
    with pytest.raises(UserError, match="does not cover the run"):
        hold(inst, late, [1, 1], 99.9, 100.1, 2.0)
    with pytest.raises(UserError, match="exactly one funding source"):
        Instrument("BTCUSDT", funding={"rate_bps": 1.0, "path": str(p)})
    with pytest.raises(UserError, match="unknown key"):
        Instrument("BTCUSDT", funding={"rate_bsp": 1.0})


def test_pnl_by_day_carries_funding():
    ts = [MIDNIGHT - HOUR, MIDNIGHT + HOUR, MIDNIGHT + 9 * HOUR]
    res = hold(usdm(rate_bps=1.0), ts, [1, 1, 1], 99.9, 100.1, 2.0)
    _, by_day = res.pnl_by(gap_ms=24 * 3_600_000)
    assert by_day.funding.sum() == pytest.approx(res.metrics()["funding"]) == pytest.approx(-0.04)
    assert by_day.pnl.sum() == pytest.approx(res.metrics()["pnl_net"])


def test_paper_broker_books_funding_as_the_backtest():
    """The replay path (prints and funding merged in time order) gives the backtest's equity, funding included."""
    inst = usdm(rate_bps=1.0)
    ts = [MIDNIGHT - HOUR, MIDNIGHT - MS, MIDNIGHT + HOUR, MIDNIGHT + 9 * HOUR]
    sig = [1, -1, -1, 1]
    bt = hold(inst, ts, sig, 99.9, 100.1, 1.0)
    b = flat_book(ts, 99.9, 100.1, inst.symbol)
    broker = PaperBroker(ex(tick_size=0.2), SignalTarget(threshold=0.5, decision_ms=0, base_size=1.0), NO_RISK, 3,
                         inst)
    fd = inst.funding.events(ts[0], ts[-1], inst.symbol)
    arr = level_major(b, 3)
    empty = (np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0))
    equity = []
    for i, t in enumerate(ts):
        k = np.searchsorted(fd[0], t, side="right")
        done = np.searchsorted(fd[0], ts[i - 1], side="right") if i else 0
        replay_market_events(broker, empty, (fd[0][done:k], fd[1][done:k]))
        equity.append(broker.on_book(t, np.ascontiguousarray(arr[:, :, i]), sig[i]))
    assert np.allclose(equity, bt.equity, rtol=0, atol=1e-12)
    # short at 00:00 and at 08:00 (flipped long only at 09:00): receives 1 x 100 x 1 bp twice
    assert broker.funding == pytest.approx(bt.metrics()["funding"]) == pytest.approx(0.02)


@needs_shared("binance_capture/cm_btcusd_perp_20240808.gz", "binance_capture/cm_btcusd_perp_20240809.gz")
def test_real_coinm_capture_pays_at_midnight(workdir):
    """The real COIN-M capture (23:54 -> 00:05 UTC) rebuilt into books, long 50 contracts from the first snapshot
    with a constant +1 bp: at 00:00 the long pays 50 x 100 / mark x 1e-4 BTC, mark = the mid of the last
    snapshot before midnight, computed here from the book."""
    cfg = make_cfg(["mode=backtest", "mode.progress=false", "data=binance_cm_btcusd_perp", f"workdir={workdir}",
                    "+data.instruments.BTCUSD_PERP.funding={rate_bps: 1.0}"])
    book = open_store(cfg).read(symbols=["BTCUSD_PERP"]).reset_index(drop=True)
    ts = book.timestamp.to_numpy(np.int64)
    midnight = int(pd.Timestamp("2024-08-09T00:00:00Z").value)
    assert ts[0] < midnight < ts[-1]
    inst = instrument_of(cfg, "BTCUSD_PERP")
    e, _, _ = trading_params(cfg, "BTCUSD_PERP", inst)
    res = backtest_book(book, np.ones(len(book)), None, e, SignalTarget(threshold=0.5, decision_ms=1e12, base_size=50),
                        NO_RISK, int(cfg.levels), inst)
    before = np.searchsorted(ts, midnight, side="left") - 1
    mark = 0.5 * (book.bid_price_1.iloc[before] + book.ask_price_1.iloc[before])
    assert res.position[before] == 50.0 and list(res.funding.ts) == [midnight]
    assert res.funding.payment.iloc[0] == pytest.approx(-50 * 100.0 / mark * 1e-4, rel=1e-12)
    m = res.metrics()
    assert m["pnl_net"] == pytest.approx(m["pnl_gross"] - m["fees"] + m["funding"], rel=1e-9)
