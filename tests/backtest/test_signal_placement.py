"""Out-of-fold predictions are traded on the snapshot they were made for (issue: look-ahead through a
training window): a run trained on a row window numbers its rows from the window's start; placing those
numbers in the full table traded every prediction minutes before its snapshot. Placement is by
(symbol, timestamp), and the backtest refuses a signal whose predictions sit on other snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l2exp.backtest.signals import TradedSignal, place_oos, verify_placement
from l2exp.errors import UserError
from l2exp.features.table import FeatureTable

T0 = 1_583_798_400 * 10**9
S = 10**9


def table(n: int = 100) -> FeatureTable:
    """XBTUSD and ETHUSD interleaved, one snapshot each per second; two XBTUSD snapshots share second 7."""
    ts = T0 + np.repeat(np.arange(n // 2), 2) * S
    sym = np.tile(["XBTUSD", "ETHUSD"], n // 2)
    ts[16] = ts[14]  # XBTUSD at position 16 is stamped like position 14 (same millisecond)
    book = pd.DataFrame({"timestamp": ts, "symbol": sym})
    return FeatureTable(book=book, features=pd.DataFrame(index=book.index), ready=pd.Series(True, index=book.index),
                        data_digest="d", cache_path=Path("."), cache_hit=False, seconds=0.0)


def oos_of_window(ft: FeatureTable, start: int, stop: int) -> pd.DataFrame:
    """What a training run on the table's rows [start, stop) writes: rows numbered from the window."""
    win = ft.book.iloc[start:stop].reset_index(drop=True)
    keep = np.flatnonzero(win.symbol.to_numpy() == "XBTUSD")[5:]  # the folds' test rows
    p_up = np.linspace(0.1, 0.9, len(keep))  # a distinct prediction per row
    return pd.DataFrame({"row": keep, "timestamp": win.timestamp.to_numpy()[keep], "symbol": "XBTUSD",
                         "fold_test_start_ts": int(win.timestamp.iloc[keep[0]]), "p_down": 1 - p_up,
                         "p_flat": 0.0, "p_up": p_up})


def test_windowed_predictions_land_on_their_own_snapshots():
    ft = table()
    oos = oos_of_window(ft, 40, 90)
    rows = np.flatnonzero(ft.book.symbol.to_numpy() == "XBTUSD")
    sig = place_oos(oos, ft, rows, "classification", ["down", "flat", "up"], "run")
    placed = np.flatnonzero(np.isfinite(sig.signal))
    ts = ft.book.timestamp.to_numpy()[rows]
    assert list(ts[placed]) == list(oos.timestamp)  # every prediction on the snapshot it was made for
    assert list(rows[placed]) == list(oos.row + 40)  # = window start + its window row, not the window row
    assert np.allclose(sig.signal[placed], oos.p_up - oos.p_down)
    verify_placement(ts, sig)  # the backtest's guard passes


def test_two_snapshots_of_one_millisecond_stay_apart():
    ft = table()
    oos = oos_of_window(ft, 0, 100)
    rows = np.flatnonzero(ft.book.symbol.to_numpy() == "XBTUSD")
    sig = place_oos(oos, ft, rows, "classification", ["down", "flat", "up"], "run")
    placed = rows[np.isfinite(sig.signal)]
    assert 14 in placed and 16 in placed and list(placed) == list(oos.row)


def test_a_shifted_signal_is_refused():
    ft = table()
    rows = np.flatnonzero(ft.book.symbol.to_numpy() == "XBTUSD")
    ts = ft.book.timestamp.to_numpy()[rows]
    sig = place_oos(oos_of_window(ft, 40, 90), ft, rows, "classification", ["down", "flat", "up"], "run")
    shifted = TradedSignal(np.roll(sig.signal, -3), sig.allowed_from, sig.start_ts, "oos", "run", sig.made_for_ts)
    with pytest.raises(UserError, match="other than the one they were made for"):
        verify_placement(ts, shifted)
    # predictions whose row numbers and timestamps disagree (re-ordered) are refused before placement
    bad = oos_of_window(ft, 40, 90)
    bad.loc[bad.index[:4], "timestamp"] = bad.timestamp.iloc[:4].to_numpy()[::-1]
    with pytest.raises(UserError, match="shifted"):
        place_oos(bad, ft, rows, "classification", ["down", "flat", "up"], "run")
    other = oos_of_window(ft, 40, 90).assign(timestamp=lambda d: d.timestamp + 123)
    with pytest.raises(UserError, match="snapshots this data does not have"):
        place_oos(other, ft, rows, "classification", ["down", "flat", "up"], "run")
