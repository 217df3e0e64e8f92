"""The engine's extension points: a strategy and a queue model defined here, in the tests, run through
the unchanged engine -- from Python objects and from config (``_target_``) -- and the queue models
give their documented answers on one hand-built book."""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import pandas as pd
import pytest

from l2exp.backtest.orders.join_touch import JoinTouch
from l2exp.backtest.queue import QueueModel
from l2exp.backtest.queue.power_prob import PowerProb
from l2exp.backtest.queue.size_decrease import SizeDecrease
from l2exp.backtest.queue.trades_only import TradesOnly
from l2exp.backtest.run import backtest_book
from l2exp.backtest.strategies import Strategy
from l2exp.backtest.strategies.signal_target import SignalTarget
from l2exp.backtest.types import INTENT_TARGET, QUEUE_SIG, STRATEGY_SIG
from l2exp.modes.trading import trading_params
from tests.backtest.test_engine import BASE, NO_RISK, book, ex
from tests.backtest.test_execution_truth import JOIN, trade, with_bid
from tests.conftest import make_cfg


@nb.njit(STRATEGY_SIG)
def _contrarian(d, sp, intents):  # noqa: ANN001, ANN202
    """Fade the signal: hold -base_size when it is positive, +base_size when negative."""
    intents[0].kind = INTENT_TARGET
    intents[0].qty = -np.sign(d.signal) * sp.base_size if abs(d.signal) >= sp.threshold else 0.0
    return 1


@dataclass
class Contrarian(Strategy):
    kernel = _contrarian


@nb.njit(QUEUE_SIG)
def _all_ahead(queue, before, now, traded, qp):  # noqa: ANN001, ANN202, ARG001
    """Every cancellation was ahead of us (the optimistic bound)."""
    return max(queue - max(before - now - traded, 0.0), 0.0)


@dataclass
class AllAhead(QueueModel):
    kernel = _all_ahead


def test_a_strategy_defined_in_the_tests_trades_through_the_engine():
    b = book([BASE] * 4)
    res = backtest_book(b, np.array([1.0, 0, 0, 0]), None, ex(), Contrarian(threshold=0.5, decision_ms=1e9,
                                                                               base_size=3), NO_RISK, 3)
    assert list(res.fills.side) == [-1.0] and res.fills.qty.sum() == 3.0  # sold 3 at the bid on a buy signal
    assert res.fills.price.iloc[0] == 100.0 and res.position[-1] == -3.0


def test_plugins_are_chosen_by_target_in_config():
    cfg = make_cfg(["mode=backtest", "strategy._target_=tests.backtest.test_plugins.Contrarian",
                    "execution.queue_model._target_=tests.backtest.test_plugins.AllAhead"])
    ex_, st, _ = trading_params(cfg, "SYNTH-USD")
    assert isinstance(st, Contrarian) and isinstance(ex_.queue_model, AllAhead)
    assert st.threshold == 0.2  # the rest of conf/strategy/signal.yaml still applies


# Join behind 10; 4 more join behind us (level 14); 3 are cancelled (level 11); then a 9-lot print.
GROWN = ([100.0, 99.0, 98.0], [14.0, 5.0, 5.0], [101.0, 102.0, 103.0], [5.0, 5.0, 5.0])


@pytest.mark.parametrize(("model", "filled"), [
    (TradesOnly(), 0.0),            # 10 ahead, 9 printed: 1 still ahead
    (SizeDecrease(front_prob=0.5), 0.0),  # 10 - 1.5 = 8.5 ahead; 0.5 excess is less than a lot: no fill
    (PowerProb(power=2.0), 1.0),    # front 10, back 4: p_back = 16/116; 10 - (100/116) 3 = 7.41 ahead -> fill 1
    (AllAhead(), 1.0),              # 7 ahead -> fill 1
])
def test_queue_models_on_cancellations_behind_and_ahead(model, filled):
    rows = [JOIN, JOIN, GROWN, with_bid(11.0), with_bid(11.0)]
    res = backtest_book(book(rows, dt_ms=10), np.r_[1.0, np.zeros(len(rows) - 1)],
                        pd.DataFrame([trade(35, 100.0, 9.0, -1.0)]), ex(order_type=JoinTouch(), queue_model=model),
                        SignalTarget(threshold=0.5, decision_ms=1e9, base_size=1), NO_RISK, 3)
    assert res.fills.qty.sum() == filled
    assert (res.fills.qty % 1.0 == 0).all()  # whole lots only
