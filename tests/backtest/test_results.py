"""Report metrics with known answers: Sharpe inside sessions, time in market, PnL tables, trade coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from l2exp.backtest.results import SECONDS_PER_YEAR, BacktestResult, counters_of, sharpe_ratio
from l2exp.backtest.trades import trades_coverage
from l2exp.backtest.types import new_account
from l2exp.risk.state import new_risk_state

S = 10**9
DAY = 86_400 * S
T0 = 1_700_000_000 * S


def result(ts: np.ndarray, equity: np.ndarray, position: np.ndarray | None = None) -> BacktestResult:
    n = len(ts)
    pos = np.zeros(n) if position is None else position
    empty_f = pd.DataFrame({c: [] for c in ("ts", "order", "side", "qty", "price", "fee", "maker", "mid", "level")})
    empty_o = pd.DataFrame({c: [] for c in ("submit_ts", "side", "type", "price", "qty", "remaining", "status")})
    return BacktestResult("X", ts, np.full(n, 100.0), pos, equity.copy(), equity.copy(), empty_f, empty_o, {},
                          counters_of(new_account(), new_risk_state()))


def test_sharpe_on_a_hand_built_equity_path():
    # one mark per 10 s for 6 minutes: the minute grid reads equity at 0, 60, ..., 360 s
    ts = T0 + np.arange(0, 361, 10) * S
    steps = np.array([1.0, 3.0, -1.0, 2.0, 0.0, 1.0])  # the six 1-minute equity changes
    eq = np.interp(np.arange(0, 361, 10), np.arange(0, 361, 60), np.r_[0.0, np.cumsum(steps)])
    sharpe, n = sharpe_ratio(ts, eq, gap_ms=300_000, period_s=60, min_periods=2)
    # by hand: mean 1, sample std sqrt(10 / 5) = 1.41421, sqrt(525,960 minutes a year) = 725.231 -> 512.82
    want = steps.mean() / steps.std(ddof=1) * np.sqrt(SECONDS_PER_YEAR / 60)
    assert n == 6 and sharpe == pytest.approx(want) and sharpe == pytest.approx(512.82, abs=0.01)


def test_sharpe_unchanged_by_a_multi_day_gap():
    """The same two one-hour sessions back to back or 6 days apart: identical Sharpe (the gap is neither
    a flat stretch nor a return), and identical time in market."""
    rng = np.random.default_rng(3)
    one = T0 + np.arange(0, 3600, 1) * S
    eq1 = np.cumsum(rng.normal(0.01, 1, len(one)))
    eq2 = eq1[-1] + np.cumsum(rng.normal(0.01, 1, len(one)))
    pos = np.where(rng.random(2 * len(one)) < 0.3, 1.0, 0.0)
    near = np.r_[one, one + 3600 * S + 400 * S]  # a 400 s pause: a new session, but no forward fill
    far = np.r_[one, one + 6 * DAY]
    a = result(near, np.r_[eq1, eq2], pos).metrics(60, 300_000)
    b = result(far, np.r_[eq1, eq2], pos).metrics(60, 300_000)
    assert a["sharpe"] == pytest.approx(b["sharpe"]) and a["sharpe_periods"] == b["sharpe_periods"] == 118
    assert a["time_in_market"] == pytest.approx(b["time_in_market"])
    assert a["sessions"] == b["sessions"] == 2 and a["session_seconds"] == b["session_seconds"] == 2 * 3599
    # forward-filling the gap (the old definition) would have changed it
    c = result(far, np.r_[eq1, eq2], pos).metrics(60, gap_ms=1e12)  # one "session" spanning the gap
    assert c["sharpe"] != pytest.approx(b["sharpe"])


def test_sharpe_undefined_when_too_short_or_flat():
    ts = T0 + np.arange(0, 181) * S
    assert np.isnan(sharpe_ratio(ts, np.arange(181.0), 300_000, 60)[0])  # 3 intervals < 20
    flat = result(T0 + np.arange(0, 7200) * S, np.zeros(7200)).metrics()
    assert np.isnan(flat["sharpe"]) and flat["sharpe_periods"] == 119


def test_time_in_market_counts_session_time_only():
    ts = np.r_[T0 + np.arange(0, 11) * S, T0 + 2 * DAY + np.arange(0, 11) * S]
    pos = np.r_[np.ones(11), np.zeros(11)]  # long through the first session (and the gap), flat after
    m = result(ts, np.zeros(22), pos).metrics(60, 300_000)
    assert m["time_in_market"] == pytest.approx(0.5)  # 10 s of 20 s; the 2-day gap counts for nothing


def test_pnl_by_session_and_day_add_up():
    ts = np.r_[T0 + np.arange(3) * S, T0 + 3 * DAY + np.arange(3) * S]
    eq = np.array([0.0, 2.0, 5.0, 1.0, 4.0, 7.0])
    by_session, by_day = result(ts, eq).pnl_by(300_000)
    assert by_session.pnl.tolist() == [5.0, 2.0] and by_session.snapshots.tolist() == [3, 3]
    assert by_day.pnl.sum() == pytest.approx(7.0) and len(by_day) == 2


def test_trades_coverage_names_the_uncovered_span():
    book_ts = T0 + np.arange(0, 101) * S
    cov, gaps = trades_coverage(book_ts, T0 + np.arange(0, 61, 5) * S, 300_000)
    assert cov == pytest.approx(0.6) and gaps == [(T0 + 60 * S, T0 + 100 * S)]
    assert trades_coverage(book_ts, np.zeros(0, np.int64), 300_000) == (0.0, [(T0, T0 + 100 * S)])
    two = np.r_[book_ts, book_ts + DAY]  # two sessions, prints only in the first: half the traded time
    cov, gaps = trades_coverage(two, book_ts, 300_000)
    assert cov == pytest.approx(0.5) and gaps == [(T0 + DAY, T0 + DAY + 100 * S)]
