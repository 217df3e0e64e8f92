"""``mode=analyze`` compares like with like (``l2exp.modes.analyze.comparable``)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from l2exp.analysis.backtest_page import _apart
from l2exp.modes.analyze import comparable


def run(rid: str, data: str, settle: str) -> SimpleNamespace:
    return SimpleNamespace(info=SimpleNamespace(run_id=rid, run_name=f"backtest {rid}"),
                           data=SimpleNamespace(tags={"l2exp.data": data, "l2exp.settle_currency": settle}))


def test_other_data_and_other_currencies_are_left_out_with_the_reason():
    """After the README's steps: three synthetic backtests in USD and a BitMEX one in XBT. ``data=synthetic``
    keeps the three, and names the BitMEX run with why; named runs (mode.backtest_runs) skip the data rule but
    not the currency rule; at most max_runs, newest first."""
    runs = [run("a", "synthetic", "USD"), run("b", "bitmex_ob10", "XBT"), run("c", "synthetic", "USD"),
            run("d", "synthetic", "USD")]
    kept, left = comparable(runs, "synthetic", explicit=False, limit=5)
    assert [r.info.run_id for r in kept] == ["a", "c", "d"]
    assert [(r.info.run_id, why) for r, why in left] == [("b", "data=bitmex_ob10, not this command's data=synthetic")]
    kept, left = comparable(runs, "synthetic", explicit=True, limit=5)
    assert [r.info.run_id for r in kept] == ["a", "c", "d"] and left[0][1] == "settles in XBT, the page's runs in USD"
    kept, left = comparable(runs, "synthetic", explicit=False, limit=2)
    assert [r.info.run_id for r in kept] == ["a", "c"] and ("d", "older than the 2 newest (mode.max_runs)") in [
        (r.info.run_id, w) for r, w in left]


def test_runs_of_different_times_are_drawn_from_their_own_start():
    day = 86_400 * 10**9
    view = lambda t0: SimpleNamespace(ts=np.arange(t0, t0 + day, 10**9))  # noqa: E731
    assert _apart([view(0), view(4 * 365 * day)])  # 2020 and 2024: elapsed time
    assert not _apart([view(0), view(day // 10)])  # the same day: the clock
