"""Known answers for the money and the fills: inverse and quanto contracts, the queue cases (one print
is counted once, the queue is capped at the displayed size, no fill without a print when prints are
loaded), a kill switch that flattens until flat, blocks per order intent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from l2exp.backtest.instruments import Instrument, instrument_for
from l2exp.backtest.orders.join_touch import JoinTouch
from l2exp.backtest.queue.power_prob import PowerProb
from l2exp.backtest.queue.size_decrease import SizeDecrease
from l2exp.backtest.queue.trades_only import TradesOnly
from l2exp.backtest.run import backtest_book
from l2exp.backtest.strategies.signal_target import SignalTarget
from l2exp.errors import UserError
from l2exp.risk.params import RiskParams
from tests.backtest.test_engine import NO_RISK, book, ex

INVERSE = Instrument("XBTUSD", "inverse", 1.0, "USD", "XBT")
QUANTO = Instrument("ETHUSD", "quanto", 1e-6, "USD", "XBT", settle_fx=8000.0)
MS = 1_000_000


def level(bid: float, ask: float, bsz: float = 1e6, asz: float = 1e6, tick: float = 0.5):
    return ([bid, bid - tick, bid - 2 * tick], [bsz] * 3, [ask, ask + tick, ask + 2 * tick], [asz] * 3)


def round_trip(inst: Instrument, entry: float, exit_: float, qty: float, tick: float, **fees):
    """Buy qty at ``entry`` (the ask), sell at ``exit_`` (the bid): market orders, no latency."""
    rows = [level(entry - tick, entry, tick=tick), level(entry - tick, entry, tick=tick),
            level(exit_, exit_ + tick, tick=tick), level(exit_, exit_ + tick, tick=tick)]
    e = ex(tick_size=tick, **fees)
    return backtest_book(book(rows), np.array([1.0, 1.0, 0.0, 0.0]), None, e,
                         SignalTarget(threshold=0.5, decision_ms=0, base_size=qty), NO_RISK, 3, inst)


def test_inverse_round_trip_pays_in_xbt():
    """Buy 1,000 XBTUSD at 8,000, sell at 8,100: 1,000 x (1/8,000 - 1/8,100) = +0.0015432 XBT."""
    res = round_trip(INVERSE, 8000.0, 8100.0, 1000, 0.5)
    assert list(res.fills.price) == [8000.0, 8100.0] and res.position[-1] == 0
    assert res.equity[-1] == pytest.approx(0.0015432, abs=1e-7)
    assert res.equity[-1] == pytest.approx(1000 * (1 / 8000 - 1 / 8100), rel=1e-12)
    m = res.metrics()
    # in USD at the marks: the XBT gained while long is worth the mid of its snapshot
    assert m["pnl_net_quote"] == pytest.approx(12.5, rel=0.02)
    fees = round_trip(INVERSE, 8000.0, 8100.0, 1000, 0.5, taker_fee_bps=7.5)
    want_fee = 1000 / 8000 * 7.5e-4 + 1000 / 8100 * 7.5e-4  # bps of the XBT notional of each fill
    assert fees.fills.fee.sum() == pytest.approx(want_fee, rel=1e-12)
    assert fees.equity[-1] == pytest.approx(1000 * (1 / 8000 - 1 / 8100) - want_fee, rel=1e-12)


def test_inverse_mark_to_market_and_a_loss():
    res = round_trip(INVERSE, 8000.0, 7900.0, 500, 0.5, latency_ms=1.0)  # the sell lands 1 ms after the mark
    assert res.equity[-1] < 0 and res.equity[-1] == pytest.approx(500 * (1 / 8000 - 1 / 7900), rel=1e-12)
    # still long 500 (bought at 8,000) on the snapshot where the book is bid 7,900 / ask 7,900.5:
    mid = 0.5 * (7900.0 + 7900.5)
    assert res.equity[2] == pytest.approx(500 * (1 / 8000 - 1 / mid), rel=1e-12)


def test_quanto_round_trip():
    """ETHUSD: 10 contracts, 200 -> 210: 10 x 10 x 1e-6 = 1e-4 XBT; in USD at a fixed 8,000: 0.8."""
    res = round_trip(QUANTO, 200.0, 210.0, 10, 0.05)
    assert res.equity[-1] == pytest.approx(1e-4, rel=1e-9)
    assert res.metrics()["pnl_net_quote"] == pytest.approx(0.8, rel=1e-9)
    lin = round_trip(Instrument("BTCUSDT", "linear", 1.0, "USDT"), 100.0, 110.0, 2, 0.1)
    assert lin.equity[-1] == pytest.approx(20.0)


def test_limits_in_usd_convert_exactly_for_an_inverse_contract():
    """Long 1,000 XBTUSD at 8,000; the mid falls to ~7,000: loss 1,000 x (1/7,000.25 - 1/8,000) = 0.0179 XBT
    = ~125 USD. A 100-USD daily loss limit fires; the same limit read in XBT (currency=settle) does not."""
    rows = [level(7999.5, 8000.0)] * 2 + [level(7000.0, 7000.5)] * 3
    strat = SignalTarget(threshold=0.5, decision_ms=1e9, base_size=1000)
    lim = dict(max_daily_loss=100.0, max_spread_bps=1e9, target_vol_bps=1e9, vol_floor_bps=1e9, max_position=1e9,
               max_notional=1e12)
    usd = backtest_book(book(rows), np.ones(5), None, ex(tick_size=0.5), strat, RiskParams.of(**lim), 3, INVERSE)
    xbt = backtest_book(book(rows), np.ones(5), None, ex(tick_size=0.5), strat,
                        RiskParams.of(currency="settle", **lim), 3, INVERSE)
    assert usd.kill_ts is not None and xbt.kill_ts is None
    cap = backtest_book(book(rows), np.ones(5), None, ex(tick_size=0.5), strat,
                        RiskParams.of(**{**lim, "max_notional": 500.0}), 3, INVERSE)
    assert cap.position.max() == 500  # 500 contracts = 500 USD of notional, whatever the price


def trade(ts_ms: float, price: float, size: float, side: float) -> dict:
    return {"ts": book([level(1, 2)]).timestamp[0] + int(ts_ms * MS), "price": price, "size": size, "side": side}


JOIN = ([100.0, 99.0, 98.0], [10.0, 5.0, 5.0], [101.0, 102.0, 103.0], [5.0, 5.0, 5.0])


def passive(rows, trades, queue_model=None, **kw):
    """A limit buy of 1 at the best bid decided on snapshot 0 (joins behind the displayed 10)."""
    return backtest_book(book(rows, dt_ms=10), np.r_[1.0, np.zeros(len(rows) - 1)],
                         pd.DataFrame(trades) if trades else None,
                         ex(order_type=JoinTouch(), queue_model=queue_model or SizeDecrease(front_prob=0.5), **kw),
                         SignalTarget(threshold=0.5, decision_ms=1e9, base_size=1), NO_RISK, 3)


def with_bid(size: float):
    return ([100.0, 99.0, 98.0], [size, 5.0, 5.0], [101.0, 102.0, 103.0], [5.0, 5.0, 5.0])


@pytest.mark.parametrize("model", [SizeDecrease(), TradesOnly(), PowerProb()], ids=["size_decrease", "trades", "power"])
def test_one_print_is_counted_once(model):
    """Join behind 10; a 6-lot print; the book then shows 4; a 3-lot print -> 1 still ahead: no fill."""
    rows = [JOIN, JOIN, with_bid(4.0), with_bid(1.0)]  # we rest from snapshot 1 (t = 10 ms)
    res = passive(rows, [trade(15, 100.0, 6.0, -1.0), trade(25, 100.0, 3.0, -1.0)], model)
    assert res.fills.empty
    more = passive(rows, [trade(15, 100.0, 6.0, -1.0), trade(25, 100.0, 5.0, -1.0)], model)
    assert more.fills.qty.sum() == 1.0 and (more.fills.maker == 1).all()  # 5 > 4 ahead: the excess fills us


@pytest.mark.parametrize("model", [SizeDecrease(), TradesOnly(), PowerProb()], ids=["size_decrease", "trades", "power"])
def test_queue_ahead_is_capped_at_the_displayed_size(model):
    """Join behind 10; the level is cancelled down to 2 (no print); a 3-lot print -> at most 2 were
    ahead of us: we fill 1."""
    rows = [JOIN, JOIN, with_bid(2.0), with_bid(2.0)]
    res = passive(rows, [trade(25, 100.0, 3.0, -1.0)], model)
    assert res.fills.qty.sum() == 1.0 and res.fills.price.iloc[0] == 100.0


def test_no_fill_without_a_print_when_prints_are_loaded():
    """The bid level at our price is cancelled away and the ask comes down to our price, with no print at
    100: with trades loaded that is not a fill; only book_through_fills=true makes it one; without trades
    the book is the only evidence and it fills (auto)."""
    reach = ([99.5, 99.0, 98.0], [5.0] * 3, [100.0, 101.0, 102.0], [5.0] * 3)
    rows = [JOIN, JOIN, reach, reach]
    # prints over the whole span (buys at 101: never at our price); outside their span the book would be
    # the only evidence again (tests/backtest/test_event_time.py)
    elsewhere = [trade(1, 101.0, 1.0, 1.0), trade(35, 101.0, 1.0, 1.0)]
    assert passive(rows, elsewhere).fills.empty
    bt = passive(rows, elsewhere, book_through_fills=True).fills
    assert bt.qty.sum() == 1.0 and list(bt.fill_rule) == ["book_through"]
    assert passive(rows, None).fills.qty.sum() == 1.0
    through = [*elsewhere, trade(15, 99.0, 1.0, -1.0)]  # a sell printed below our bid: it traded through us
    assert list(passive(rows, through).fills.fill_rule) == ["print"]


def test_our_side_moving_past_our_price_is_not_a_fill():
    """The bid at our price is cancelled away (best bid 99) but no seller comes to 100 (ask stays 101):
    nobody traded with us, whatever book_through_fills says -- we are first in the queue, and the next
    sell print at 100 fills us."""
    gone = ([99.0, 98.0, 97.0], [5.0] * 3, [101.0, 102.0, 103.0], [5.0] * 3)
    rows = [JOIN, JOIN, gone, gone]
    assert passive(rows, None).fills.empty
    assert passive(rows, None, book_through_fills=True).fills.empty
    first = passive(rows, [trade(25, 100.0, 1.0, -1.0)]).fills
    assert first.qty.sum() == 1.0 and first.ts.iloc[0] == book([level(1, 2)]).timestamp[0] + 25 * MS


def test_kill_switch_flattens_until_flat():
    """Long 8 (lot 0.5); a crash fires the daily-loss kill; the bid shows 2.5 each snapshot: flattening
    8 -> 5.5 (on the kill's own snapshot: zero latency) -> 3 -> 0.5 -> 0, four attempts counted."""
    full = ([100.0, 99.0, 98.0], [10.0] * 3, [101.0, 102.0, 103.0], [10.0] * 3)
    thin = ([90.0, 89.0, 88.0], [2.5, 0.0, 0.0], [91.0, 92.0, 93.0], [10.0] * 3)
    rows = [full, full] + [thin] * 7
    r = RiskParams.of(max_daily_loss=20.0, max_spread_bps=1e9, target_vol_bps=1e9, vol_floor_bps=1e9,
                   max_position=100)
    res = backtest_book(book(rows), np.ones(len(rows)), None, ex(lot_size=0.5), SignalTarget(
        threshold=0.5, decision_ms=0, base_size=8), r, 3)
    kill_row = int(np.searchsorted(res.ts, res.kill_ts))
    assert kill_row == 2 and res.position[1] == 8.0
    assert list(res.position[kill_row:kill_row + 5]) == [5.5, 3.0, 0.5, 0.0, 0.0]
    sells = res.fills[res.fills.side < 0]
    assert list(sells.qty) == [2.5, 2.5, 2.5, 0.5]
    m = res.metrics()
    assert m["kill_flatten_attempts"] == 4 and m["final_position"] == 0.0
    # blocks count blocked order intents: the strategy still wants +8 on each decision after the kill
    assert res.blocks["kill_switch"] == len(rows) - kill_row


def test_size_below_lot_is_a_counted_block():
    calm = ([100.0, 99.0, 98.0], [5.0] * 3, [101.0, 102.0, 103.0], [5.0] * 3)
    res = backtest_book(book([calm] * 4), np.ones(4), None, ex(lot_size=10.0), SignalTarget(
        threshold=0.5, decision_ms=0, base_size=4), RiskParams.of(max_spread_bps=1e9), 3)
    assert res.fills.empty and res.blocks["size_below_lot"] == 4


def test_instrument_config_errors():
    with pytest.raises(UserError, match="contract must be one of"):
        instrument_for({"X": {"contract": "perpetual"}}, "X")
    with pytest.raises(UserError, match="unknown key"):
        instrument_for({"X": {"multiplyer": 1}}, "X")
    with pytest.raises(UserError, match="settle_fx"):
        instrument_for({"X": {"contract": "quanto", "multiplier": 1e-6}}, "X")
    with pytest.raises(UserError, match="no instrument declared for ETHUSDT") as e:  # never guessed
        instrument_for({"BTCUSDT": {"contract": "linear"}}, "ETHUSDT", "binance_usdm_btcusdt")
    assert "instruments:" in e.value.fix and "ETHUSDT: {contract:" in e.value.fix
    assert instrument_for(None, "Y", required=False).contract == "linear"  # a live feed's, said by the sim
    assert instrument_for({"X": {"tick": 0.01, "lot": 0.001}}, "X").tick == 0.01


def test_a_passive_order_is_cancelled_when_the_target_is_reached():
    """Limit strategy: a buy rests for target +1; the next decision wants flat (position still 0), so the
    resting buy must be cancelled -- a later trade-through must not fill it against the target."""
    through = ([99.0, 98.0, 97.0], [5.0] * 3, [100.0, 101.0, 102.0], [5.0] * 3)  # the ask reaches our bid
    rows = [JOIN, JOIN, JOIN, through, through]
    res = backtest_book(book(rows, dt_ms=10), np.array([1.0, 0.0, 0.0, 0.0, 0.0]), None,
                        ex(order_type=JoinTouch()), SignalTarget(threshold=0.5, decision_ms=0, base_size=1), NO_RISK, 3)
    assert res.fills.empty and res.position[-1] == 0.0
    keep = backtest_book(book(rows, dt_ms=10), np.ones(5), None, ex(order_type=JoinTouch()),
                         SignalTarget(threshold=0.5, decision_ms=1e9, base_size=1), NO_RISK, 3)
    assert keep.fills.qty.sum() == 1.0  # the same book fills a buy that is still wanted
