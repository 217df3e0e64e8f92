"""Known answers for *when* fills happen (issue: fills at event time). Each case is computed by hand
in its docstring and failed on the snapshot-quantised engine: orders reach the book at decision +
latency, are matched against the prints and snapshots that follow in time order, take or make as the
venue would decide on arrival, and our own orders share the book's liquidity and one print's size;
risk holds with orders in flight."""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import pandas as pd
import pytest

from l2exp.backtest.orders.join_touch import JoinTouch
from l2exp.backtest.queue.trades_only import TradesOnly
from l2exp.backtest.results import hit_rate
from l2exp.backtest.run import backtest_book
from l2exp.backtest.strategies import Strategy
from l2exp.backtest.strategies.quote_touch import QuoteTouch
from l2exp.backtest.strategies.signal_target import SignalTarget
from l2exp.backtest.types import INTENT_TARGET, STRATEGY_SIG
from l2exp.risk.params import RiskParams
from tests.backtest.test_engine import BASE, MS, NO_RISK, T0, ex

CALM = ([100.0, 99.0, 98.0], [5.0] * 3, [101.0, 102.0, 103.0], [5.0] * 3)


def book_at(rows: list[tuple], at_ms: list[float]) -> pd.DataFrame:
    """Snapshots at the given times (ms after T0), 3 levels each."""
    out = []
    for t, (bp, bs, ap, as_) in zip(at_ms, rows, strict=True):
        r = {"timestamp": T0 + int(round(t * MS)), "symbol": "X", "exchange": "E"}
        for i in range(3):
            r[f"bid_price_{i + 1}"], r[f"bid_size_{i + 1}"] = bp[i], bs[i]
            r[f"ask_price_{i + 1}"], r[f"ask_size_{i + 1}"] = ap[i], as_[i]
        out.append(r)
    return pd.DataFrame(out)


def prints(*rows: tuple[float, float, float, float]) -> pd.DataFrame:
    """(ms after T0, price, size, aggressor side)"""
    return pd.DataFrame({"ts": [T0 + int(round(t * MS)) for t, *_ in rows], "price": [r[1] for r in rows],
                         "size": [r[2] for r in rows], "side": [r[3] for r in rows]})


@nb.njit(STRATEGY_SIG)
def _add(d, sp, intents):  # noqa: ANN001, ANN202
    """Buy ``base_size`` more at every decision (target = position + working + base_size)."""
    intents[0].kind = INTENT_TARGET
    intents[0].qty = d.pos + d.working + sp.base_size
    return 1


@dataclass
class AddEachDecision(Strategy):
    kernel = _add


def test_two_market_orders_share_the_displayed_liquidity():
    """Asks 2 @101 + 3 @102 + 4 @103; buys of 8 decided at 0 and 1 ms, 5 ms latency: they arrive at 5
    and 6 ms, before the next snapshot (10 ms). The first takes 2 + 3 + 3; the second finds 1 lot left
    at 103 -- 9 lots in all, never the 16 of two orders each walking the whole book."""
    b = book_at([BASE, BASE, BASE], [0, 1, 10])
    res = backtest_book(b, np.ones(3), None, ex(latency_ms=5.0), AddEachDecision(threshold=0.5, decision_ms=0,
                        base_size=8), NO_RISK, 3)
    f = res.fills
    assert f.qty.sum() == 9.0
    assert list(zip(f.qty, f.price, f.ts - T0, strict=True)) == [
        (2.0, 101.0, 5 * MS), (3.0, 102.0, 5 * MS), (3.0, 103.0, 5 * MS), (1.0, 103.0, 6 * MS)]
    assert (f.fill_rule == "taker").all() and res.metrics()["ioc_unfilled"] >= 1


def test_one_print_fills_our_orders_in_queue_order():
    """Quotes of 2 re-posted every 10 ms at the bid (100, 5 displayed), entry latency 1 ms, cancels
    landing after 50 ms: the quotes of 0, 10 and 20 ms all rest at 100 at 25 ms, each behind the 5
    displayed and behind our older ones. A 7-lot sell prints at 100: 5 go to the others ahead, 2 to
    our oldest quote, nothing to the younger two -- 2 lots, not 2 per order."""
    b = book_at([CALM] * 4, [0, 10, 20, 30])
    res = backtest_book(b, np.ones(4), prints((25, 100.0, 7.0, -1.0)),
                        ex(latency_ms=1.0, cancel_latency_ms=50.0, queue_model=TradesOnly()),
                        QuoteTouch(decision_ms=10, base_size=2), NO_RISK, 3)
    f = res.fills
    assert list(f.qty) == [2.0] and f.order.iloc[0] == 0 and f.price.iloc[0] == 100.0
    assert f.ts.iloc[0] == T0 + 25 * MS and (f.fill_rule == "print").all() and (f.maker == 1).all()
    # the next print at 100 meets the younger quotes behind nobody else: a 3-lot print fills 2 + 1
    more = backtest_book(b, np.ones(4), prints((25, 100.0, 7.0, -1.0), (26, 100.0, 3.0, -1.0)),
                         ex(latency_ms=1.0, cancel_latency_ms=50.0, queue_model=TradesOnly()),
                         QuoteTouch(decision_ms=10, base_size=2), NO_RISK, 3)
    assert list(more.fills.qty) == [2.0, 2.0, 1.0] and list(more.fills.order) == [0, 2, 4]


def test_a_print_before_the_order_arrives_is_not_ours_and_one_after_it_is():
    """Snapshots every 100 ms; a buy at the bid (100, 5 ahead) decided at 0 arrives at 5 ms. A 7-lot sell
    print at 3 ms happens before it exists; one at 19 ms fills 2 (7 - 5), stamped 19 ms. The snapshot
    engine activated the order at 100 ms and missed the 19 ms print."""
    b = book_at([CALM] * 3, [0, 100, 200])
    sig = np.array([1.0, 1.0, 1.0])
    run = lambda tr: backtest_book(b, sig, tr, ex(latency_ms=5.0, order_type=JoinTouch(),  # noqa: E731
                                                     queue_model=TradesOnly()),
                                   SignalTarget(threshold=0.5, decision_ms=1e9, base_size=3), NO_RISK, 3)
    assert run(prints((3, 100.0, 7.0, -1.0))).fills.empty
    f = run(prints((19, 100.0, 7.0, -1.0))).fills
    assert list(f.qty) == [2.0] and list(f.ts - T0) == [19 * MS] and (f.maker == 1).all()


def test_maker_or_taker_is_decided_when_the_order_arrives():
    """A buy limit at the bid (100) decided at 0 arrives at 5 ms and rests (the ask is 101). At 10 ms the
    ask drops to 100: the book came to our resting order -- a maker fill at 100 (book_through, no
    prints loaded), not a taker fill. The same order arriving after the 10 ms snapshot (latency 15 ms)
    crosses the book it meets: taker at 100."""
    down = ([99.5, 99.0, 98.0], [5.0] * 3, [100.0, 101.0, 102.0], [5.0] * 3)
    b = book_at([CALM, down, down], [0, 10, 20])
    run = lambda lat: backtest_book(b, np.ones(3), None, ex(latency_ms=lat, order_type=JoinTouch(),  # noqa: E731
                                                             tick_size=0.5, maker_fee_bps=-2.5, taker_fee_bps=7.5),
                                    SignalTarget(threshold=0.5, decision_ms=1e9, base_size=1), NO_RISK, 3)
    made = run(5.0).fills
    assert list(made.fill_rule) == ["book_through"] and (made.maker == 1).all() and list(made.ts - T0) == [10 * MS]
    assert made.fee.iloc[0] == pytest.approx(-100.0 * 2.5e-4)
    took = run(15.0).fills
    assert list(took.fill_rule) == ["taker"] and (took.maker == 0).all() and list(took.ts - T0) == [15 * MS]
    assert took.fee.iloc[0] == pytest.approx(100.0 * 7.5e-4)


def test_a_print_in_the_instant_our_cancel_lands_is_ours():
    """Market data before our own events of the same instant: a buy rests at 100 behind 5; a cancel
    requested at 10 ms lands at 15 ms, the instant a 7-lot sell prints at 100 -- we still fill 2."""
    b = book_at([CALM] * 3, [0, 10, 20])
    sig = np.array([1.0, 0.0, 0.0])  # target 3 at 0 ms, flat at 10 ms: the resting buy is cancelled
    res = backtest_book(b, sig, prints((15, 100.0, 7.0, -1.0)),
                        ex(latency_ms=1.0, cancel_latency_ms=5.0, order_type=JoinTouch(), queue_model=TradesOnly()),
                        SignalTarget(threshold=0.5, decision_ms=0, base_size=3), NO_RISK, 3)
    assert list(res.fills.qty) == [2.0] and list(res.fills.ts - T0) == [15 * MS]
    late = backtest_book(b, sig, prints((16, 100.0, 7.0, -1.0)),
                         ex(latency_ms=1.0, cancel_latency_ms=5.0, order_type=JoinTouch(), queue_model=TradesOnly()),
                         SignalTarget(threshold=0.5, decision_ms=0, base_size=3), NO_RISK, 3)
    assert late.fills.empty  # a millisecond later the order is gone


def test_the_passive_kill_switch_flattens_one_snapshot_after_it_fires():
    """Long 10 at 100 (a join at the bid filled by a 20-lot print at 5 ms); the book falls to 90/91 at
    50 ms: drawdown 10 x (100.5 - 90.5) = 100 >= 50, the switch fires at 50 ms. Its flatten (a market
    sell, 1 ms latency) walks 5 @90 + 5 @89 at 51 ms -- flat at the 60 ms mark -- and no later decision
    cancels it (the old engine cancelled each flatten by target netting and stayed long 10)."""
    fall = ([90.0, 89.0, 88.0], [5.0] * 3, [91.0, 92.0, 93.0], [5.0] * 3)
    at = [0, 10, 20, 30, 40, 50, 60, 70]
    b = book_at([CALM] * 5 + [fall] * 3, at)
    r = RiskParams.of(max_drawdown=50.0, max_spread_bps=1e9, target_vol_bps=1e6, vol_floor_bps=1e6,
                      max_position=100)
    for decision_ms in (0, 10):
        res = backtest_book(b, np.ones(8), prints((5, 100.0, 20.0, -1.0)),
                            ex(latency_ms=1.0, order_type=JoinTouch(), queue_model=TradesOnly()),
                            SignalTarget(threshold=0.5, decision_ms=decision_ms, base_size=10), r, 3)
        assert res.kill_ts == T0 + 50 * MS
        assert list(res.position) == [0.0, 10.0, 10.0, 10.0, 10.0, 10.0, 0.0, 0.0], decision_ms
        sells = res.fills[res.fills.side < 0]
        assert list(zip(sells.qty, sells.price, strict=True)) == [(5.0, 90.0), (5.0, 89.0)]
        assert res.metrics()["kill_flatten_attempts"] == 1


def test_max_position_holds_with_a_cancel_in_flight():
    """max_position 10; a buy of 10 rests at 100 and is re-priced every 10 ms to the new bid (100.5 from
    10 ms on), cancels landing 15 ms after the request. At 22 ms a 20-lot sell prints at 100: the first
    buy, whose cancel is still in flight, fills 10. A second buy of 10 at 100.5 would have been traded
    through by the same print -- position 20. In the worst case (position + every buy that can still
    fill) there is no room for it while the first can fill: never more than 10."""
    up = ([100.5, 100.0, 99.5], [5.0] * 3, [101.0, 101.5, 102.0], [5.0] * 3)
    b = book_at([CALM] + [up] * 4, [0, 10, 20, 30, 40])
    r = RiskParams.of(max_position=10, max_spread_bps=1e9, target_vol_bps=1e6, vol_floor_bps=1e6)
    res = backtest_book(b, np.ones(5), prints((22, 100.0, 20.0, -1.0)),
                        ex(latency_ms=1.0, cancel_latency_ms=15.0, order_type=JoinTouch(), queue_model=TradesOnly(),
                           tick_size=0.5),
                        SignalTarget(threshold=0.5, decision_ms=10, base_size=10), r, 3)
    assert res.position.max() == 10.0 and res.position[-1] == 10.0
    assert res.blocks["max_position"] >= 1


def test_a_round_trip_at_one_price_with_taker_fees_is_not_a_hit():
    """Buy 10 @100.5, sell 10 @100.5, taker 7.5 bps: fees 2 x 10 x 100.5 x 7.5e-4 = 1.5075 lost; the hit
    rate is 0, not 1 (the old one measured from the equity after the entry fee and half spread)."""
    buy = ([100.0, 99.5, 99.0], [50.0] * 3, [100.5, 101.0, 101.5], [50.0] * 3)
    sell = ([100.5, 100.0, 99.5], [50.0] * 3, [101.0, 101.5, 102.0], [50.0] * 3)
    b = book_at([buy, buy, sell, sell], [0, 10, 20, 30])
    res = backtest_book(b, np.array([1.0, 1.0, 0.0, 0.0]), None, ex(taker_fee_bps=7.5, tick_size=0.5),
                        SignalTarget(threshold=0.5, decision_ms=0, base_size=10), NO_RISK, 3)
    assert list(res.fills.price) == [100.5, 100.5]
    assert res.equity[-1] == pytest.approx(-1.5075)
    assert res.metrics()["hit_rate"] == 0.0
    # a flip closes one trip and opens the next: long 10 @100, sell 15 @101 (+10 on the long, short 5),
    # buy 5 @103 (-10 on the short): one hit of two
    flip = pd.DataFrame({"side": [1.0, -1.0, 1.0], "qty": [10.0, 15.0, 5.0], "price": [100.0, 101.0, 103.0],
                         "fee": [0.0] * 3})
    assert hit_rate(flip, None) == 0.5


def test_fills_by_rule_in_the_metrics():
    b = book_at([CALM] * 3, [0, 10, 20])
    res = backtest_book(b, np.ones(3), prints((15, 100.0, 9.0, -1.0)),
                        ex(latency_ms=1.0, order_type=JoinTouch(), queue_model=TradesOnly()),
                        SignalTarget(threshold=0.5, decision_ms=1e9, base_size=3), NO_RISK, 3)
    m = res.metrics()
    assert (m["fills_print"], m["fills_book_through"], m["fills_taker"]) == (1, 0, 0)
    assert res.fills_by_rule() == {"print": 1, "book_through": 0, "taker": 0}


def test_book_through_applies_where_no_print_covers_the_time():
    """Prints loaded for 2..15 ms only. A buy rests at 100; the ask comes down to 100 with no print at it.
    At 10 ms (inside the prints' span) that is a cancelled level, not a fill; at 30 ms (after the last
    print: the book is the only evidence) it fills as book_through -- under the default ``auto``."""
    reach = ([99.5, 99.0, 98.0], [5.0] * 3, [100.0, 101.0, 102.0], [5.0] * 3)
    tr = prints((2, 101.0, 1.0, 1.0), (15, 101.0, 1.0, 1.0))  # buys at 101: never at our price
    run = lambda rows: backtest_book(book_at(rows, [0, 10, 20, 30, 40]), np.ones(5), tr,  # noqa: E731
                                     ex(latency_ms=1.0, order_type=JoinTouch(), tick_size=0.5),
                                     SignalTarget(threshold=0.5, decision_ms=1e9, base_size=1), NO_RISK, 3)
    assert run([CALM, reach, CALM, CALM, CALM]).fills.empty
    late = run([CALM, CALM, CALM, reach, reach]).fills
    assert list(late.fill_rule) == ["book_through"] and list(late.ts - T0) == [30 * MS]
