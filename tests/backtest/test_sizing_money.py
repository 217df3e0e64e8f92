"""Sizes in money (``risk.sizing.unit_notional``), by hand: one unit of a strategy's size is worth the same
money on every instrument -- converted per decision through the instrument's contract value and fx, rounded
down to lots with the rounding counted. Before it, ``base_size: 1`` was 1 USD on XBTUSD and 1 BTC on BTCUSDT."""

from __future__ import annotations

import numpy as np
import pytest

from l2exp.backtest.instruments import Instrument
from l2exp.backtest.orders.join_touch import JoinTouch
from l2exp.backtest.run import backtest_book
from l2exp.backtest.strategies.quote_touch import QuoteTouch
from l2exp.backtest.strategies.signal_target import SignalTarget
from l2exp.risk.params import RiskParams
from tests.backtest.test_engine import ex
from tests.backtest.test_funding import MIDNIGHT, flat_book

HOUR = 3_600_000_000_000


def held(inst: Instrument, bid: float, ask: float, lot: float, currency: str = "quote", unit: float = 1000.0,
         fx: float | None = None):
    """Long one unit (market order at the first snapshot) with risk off but sizes in money."""
    ts = [MIDNIGHT, MIDNIGHT + HOUR]
    rk = RiskParams.of(enabled=False, currency=currency, unit_notional=unit)
    e = ex(tick_size=round(ask - bid, 10), lot_size=lot)
    return backtest_book(flat_book(ts, bid, ask, inst.symbol), np.ones(2), None, e,
                         SignalTarget(threshold=0.5, decision_ms=1e12, base_size=1.0), rk, 3, inst,
                         None if fx is None else np.full(2, fx))


def test_inverse_xbtusd_1000_usd_is_1000_contracts():
    res = held(Instrument("XBTUSD", "inverse", 1.0, "USD", "XBT"), 7999.5, 8000.5, 1.0)
    assert res.position[-1] == 1000.0 and res.metrics()["size_rounded_orders"] == 0


def test_inverse_in_settlement_currency():
    """0.1 XBT at a mid of 8,000: one contract is worth 1/8,000 XBT -> 800 contracts."""
    res = held(Instrument("XBTUSD", "inverse", 1.0, "USD", "XBT"), 7999.5, 8000.5, 1.0, currency="settle", unit=0.1)
    assert res.position[-1] == 800.0


def test_linear_btcusdt_rounds_down_to_lots_and_counts_it():
    """1,000 USDT at a mid of 65,000 = 0.0153846 BTC -> 0.015 (lot 0.001), 0.0003846 cut off and counted."""
    res = held(Instrument("BTCUSDT", "linear", 1.0, "USDT", "USDT"), 64999.9, 65000.1, 0.001)
    assert res.position[-1] == pytest.approx(0.015)
    m = res.metrics()
    assert m["size_rounded_orders"] == 1 and m["size_rounded_qty"] == pytest.approx(1000 / 65000 - 0.015, rel=1e-9)


def test_coinm_and_quanto():
    """BTCUSD_PERP (100 USD contracts): 10 contracts. ETHUSD quanto (1e-6 XBT per USD, XBT at 8,000 USD) at a mid of
    200: one contract is 1e-6 x 200 x 8,000 = 1.6 USD -> 625 contracts."""
    perp = held(Instrument("BTCUSD_PERP", "inverse", 100.0, "USD", "BTC"), 39999.9, 40000.1, 1.0)
    assert perp.position[-1] == 10.0
    eth = held(Instrument("ETHUSD", "quanto", 1e-6, "USD", "XBT", settle_fx=8000.0), 199.95, 200.05, 1.0, fx=8000.0)
    assert eth.position[-1] == 625.0


def test_quotes_are_sized_in_money_too():
    """A quoting strategy's base_size 1 at 1,000 USDT: bids and asks of 0.015 BTC at a 65,000 mid."""
    ts = [MIDNIGHT, MIDNIGHT + HOUR]
    rk = RiskParams.of(enabled=False, unit_notional=1000.0)
    res = backtest_book(flat_book(ts, 64999.9, 65000.1, "BTCUSDT"), np.zeros(2), None,
                        ex(tick_size=0.2, lot_size=0.001, order_type=JoinTouch()),
                        QuoteTouch(decision_ms=1e12, base_size=1.0), rk, 3,
                        Instrument("BTCUSDT", "linear", 1.0, "USDT", "USDT"))
    assert len(res.orders) == 2 and np.allclose(res.orders.qty, 0.015)


def test_contracts_when_unit_notional_is_zero():
    res = held(Instrument("XBTUSD", "inverse", 1.0, "USD", "XBT"), 7999.5, 8000.5, 1.0, unit=0.0)
    assert res.position[-1] == 1.0
