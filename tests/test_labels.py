"""Labels: future mid move, only data after t, last horizon rows dropped and counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from l2exp.errors import UserError
from l2exp.labels import LabelSpec


def book(mids: list[float], ts: list[int] | None = None, symbol: str = "S") -> pd.DataFrame:
    mids = np.asarray(mids, dtype=float)
    n = len(mids)
    return pd.DataFrame({"timestamp": np.asarray(ts if ts is not None else np.arange(n) * 10**6) + 10**18,
                         "symbol": symbol, "exchange": "E", "bid_price_1": mids - 0.5, "ask_price_1": mids + 0.5})


def test_event_horizon_classes_and_dropped_tail():
    lab = LabelSpec(horizon=2, kind="classification", threshold=1.0).compute(book([100, 100, 101, 99, 100]))
    assert np.isnan(lab.y[-2:]).all() and lab.valid.sum() == 3
    np.testing.assert_allclose(lab.future_ret_bps[:3], np.log([101 / 100, 99 / 100, 100 / 101]) * 1e4)
    assert lab.y[:3].tolist() == [2.0, 0.0, 0.0]  # +99.5 bps up, -100.5 down, -99.5 down


def test_time_horizon_uses_book_as_it_stands_then():
    ts = [0, 100, 250, 900, 1000]  # ms
    b = book([10, 11, 12, 13, 14], [t * 10**6 for t in ts])
    lab = LabelSpec(horizon=200, unit="ms", kind="regression").compute(b)
    # t=0 -> last snapshot at or before 200 ms is t=100 (mid 11); t=100 -> 250 (12); t=250 -> 250.. 450 -> 250 (12)
    np.testing.assert_allclose(lab.y[:3], np.log([11 / 10, 12 / 11, 12 / 12]) * 1e4)
    assert lab.valid.tolist() == [True, True, True, False, False]


def test_threshold_in_spreads_and_binary():
    b = book([100, 100.004, 100.0])
    spread_bps = 1 / 100 * 1e4  # 100 bps
    lab = LabelSpec(horizon=1, kind="classification", threshold=0.01, threshold_unit="spread").compute(b)
    assert lab.y[0] == 1.0  # +0.4 bps < 0.01 spreads (1 bps): flat
    assert LabelSpec(horizon=1, kind="binary").compute(b).y[0] == 1.0  # up at all
    assert spread_bps == 100


def test_label_uses_only_data_after_t():
    rng = np.random.default_rng(1)
    mids = 100 + np.cumsum(rng.normal(0, 0.1, 500))
    spec = LabelSpec(horizon=20)
    base = spec.compute(book(mids))
    changed = mids.copy()
    changed[:250] += 5  # rows before t=250 change
    again = spec.compute(book(changed))
    np.testing.assert_array_equal(again.y[250:], base.y[250:])


def test_per_symbol_labels_never_mix():
    a, b = book([1, 2, 3, 4], symbol="A"), book([100, 100, 100, 100], symbol="B")
    both = pd.concat([a, b]).sort_values("timestamp", kind="stable").reset_index(drop=True)
    lab = LabelSpec(horizon=1, kind="regression").compute(both)
    assert np.nanmax(np.abs(lab.y[both.symbol.eq("B").to_numpy()])) == 0.0


@pytest.mark.parametrize("kw", [{"horizon": 0}, {"horizon": -5}, {"horizon": 5, "kind": "ternary"},
                                {"horizon": 5, "unit": "s"}])
def test_bad_label_config(kw):
    with pytest.raises(UserError):
        LabelSpec(**kw)


def test_no_label_window_crosses_a_session_gap():
    """Two recordings 6 days apart: the last rows of the first have no label (their horizon would read
    the second recording), are counted, and the first rows of the second are labelled normally."""
    day = 86_400 * 10**9
    ts = [0, 10**6, 2 * 10**6, 3 * 10**6, 6 * day, 6 * day + 10**6, 6 * day + 2 * 10**6, 6 * day + 3 * 10**6]
    b = book([100, 101, 102, 103, 200, 201, 202, 203], ts)
    spec = LabelSpec(horizon=2, kind="regression")
    whole = spec.compute(b)  # no session rule: rows 2 and 3 read the other recording
    assert whole.valid[:6].all() and whole.label_end_ts[3] == b.timestamp[5]
    lab = spec.compute(b, gap_ms=300_000)
    assert lab.valid.tolist() == [True, True, False, False, True, True, False, False]
    assert lab.cut_by_gap == 2
    np.testing.assert_allclose(lab.y[[0, 1, 4, 5]], np.log([102 / 100, 103 / 101, 202 / 200, 203 / 201]) * 1e4)
    assert (lab.label_end_ts[lab.valid] - b.timestamp[lab.valid] < 300_000 * 10**6).all()
    # the persistence baseline looks back within the session only
    back = spec.past_returns(b, gap_ms=300_000)
    assert np.isnan(back[[0, 1, 4, 5]]).all() and np.isfinite(back[[2, 3, 6, 7]]).all()


def test_time_horizon_labels_stop_at_a_gap():
    ms = 10**6
    ts = [0, 100 * ms, 200 * ms, 3_600_000 * ms, 3_600_100 * ms]
    lab = LabelSpec(horizon=150, unit="ms", kind="regression").compute(book([1, 2, 3, 4, 5], ts), gap_ms=60_000)
    assert lab.valid.tolist() == [True, False, False, False, False] and lab.cut_by_gap == 2
