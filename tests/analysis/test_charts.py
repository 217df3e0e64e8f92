"""The Plotly chart builders: what they draw is what the run did (thinning keeps extremes, PnL bars add
up to the final equity, fills keep side and maker/taker), with date axes and titles that say the units."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from l2exp.analysis import charts
from l2exp.analysis.backtest_page import BacktestView, run_page


def _book(n: int = 500, levels: int = 3) -> pd.DataFrame:
    ts = pd.date_range("2024-01-01", periods=n, freq="100ms").as_unit("ns").asi8
    mid = 100 + np.cumsum(np.random.default_rng(0).normal(0, 0.01, n))
    return pd.DataFrame({"timestamp": ts, **{f"bid_price_{i}": mid - 0.05 * i for i in range(1, levels + 1)},
                         **{f"ask_price_{i}": mid + 0.05 * i for i in range(1, levels + 1)},
                         **{f"bid_size_{i}": 5.0 * i for i in range(1, levels + 1)},
                         **{f"ask_size_{i}": 4.0 * i for i in range(1, levels + 1)}})


def _fills(book: pd.DataFrame) -> pd.DataFrame:
    rows = [10, 50, 90, 300]
    return pd.DataFrame({"ts": book.timestamp.to_numpy()[rows], "order": range(4), "side": [1.0, -1.0, 1.0, -1.0],
                         "qty": 1.0, "price": book.ask_price_1.to_numpy()[rows], "fee": 0.01,
                         "maker": [0.0, 1.0, 0.0, 1.0], "mid": book.ask_price_1.to_numpy()[rows] - 0.05, "level": 1})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=3000), st.integers(4, 200))
@example([-1.0, 1.0, -1.0, 0.0, 0.0], 4)  # ties: the bucket minimum is the row before the peak, not the trough
def test_minmax_thinning_keeps_every_extreme(values, max_points):
    v = np.asarray(values)
    idx = charts.minmax_index(v, max_points)
    assert idx[0] == 0 and idx[-1] == len(v) - 1 and np.all(np.diff(idx) > 0)
    assert v[idx].min() == v.min() and v[idx].max() == v.max()
    assert len(idx) <= max(len(v), 0) and (len(v) <= max_points or len(idx) <= max_points + 4)
    dd = charts.drawdown(v)
    assert charts.drawdown(v[idx]).min() >= dd.min() - 1e-9  # never deeper than the truth ...
    assert np.isclose(dd[idx].min(), dd.min())  # ... and the deepest point is among the drawn rows


def test_pnl_buckets_add_up_and_fit_the_span():
    ts = pd.date_range("2024-01-02 00:47", periods=3600, freq="1s").as_unit("ns").asi8  # one hour: 5-minute bars
    eq = np.cumsum(np.random.default_rng(1).normal(0, 1, len(ts)))
    size, label = charts.bucket_for(int(ts[-1] - ts[0]))
    assert (size, label) == (300, "5 min")
    bars = charts.pnl_bucket(ts, eq, size)
    assert len(bars) in (12, 13) and np.isclose(bars.sum(), eq[-1])
    assert bars.index[0] == pd.Timestamp("2024-01-02 00:45", tz="UTC").value // 1_000_000  # UTC boundary
    assert charts.bucket_for(3 * 86_400 * 10**9)[1] == "4 h" and charts.bucket_for(30 * 86_400 * 10**9)[1] == "day"


def test_book_and_fills_chart_shows_every_fill_on_a_time_axis():
    book = _book()
    fig = charts.book_fills_chart(book, _fills(book), 3, "X: book and fills")
    names = [t.name for t in fig.data]
    assert names[:4] == ["bid depth (levels 1-3)", "ask depth (levels 1-3)", "best bid", "best ask"]
    buys, sells = fig.data[names.index("buy fill")], fig.data[names.index("sell fill")]
    assert len(buys.x) == 2 and len(sells.x) == 2
    assert list(buys.marker.symbol) == ["triangle-up-open", "triangle-up-open"]  # taker = open marker
    assert list(sells.marker.symbol) == ["triangle-down", "triangle-down"]       # maker = filled
    assert fig.layout.xaxis.type == "date" and fig.layout.xaxis.title.text == "time (UTC)"
    assert buys.x[0] == book.timestamp.iloc[10] / 1e6  # epoch ms on the date axis


def test_run_page_is_one_self_contained_page():
    book = _book()
    ts = book.timestamp.to_numpy()
    eq = np.linspace(0, -3, len(ts))
    view = BacktestView(name="abc moderate", symbol="X", settle="BTC", ts=ts, equity=eq, position=np.zeros(len(ts)),
                        fills=_fills(book), blocks={"spread": 3, "depth": 0},
                        by_session=pd.DataFrame({"session": [0], "start": [pd.Timestamp(ts[0], tz="UTC")],
                                                 "end": [pd.Timestamp(ts[-1], tz="UTC")], "snapshots": [len(ts)],
                                                 "pnl": [eq[-1]]}),
                        metrics={"pnl_net": eq[-1]}, facts=[("run", "abc")])
    html = run_page(view, book, 3, "backtest X")
    assert html.count("<script type='text/javascript'>") == 1  # plotly.js once
    assert html.count("class='chart'") == 5 and "<script src" not in html and "<link" not in html
    assert "equity (BTC)" in html and "PnL per 1 min (UTC)" in html and "risk manager" in html
