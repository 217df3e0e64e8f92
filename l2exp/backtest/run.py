"""``mode=backtest``: the champion (or any) model's signal traded against the recorded book.

:func:`backtest_book` is the pure core (book + signal + trades + parameters -> result), used by
the tests with hand-built books and by the stress suite; :func:`run_backtest` wires it to the
registry, the feature table, the trades file and MLflow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from l2exp.backtest.engine import simulate
from l2exp.backtest.funding import funding_events
from l2exp.backtest.instruments import Instrument
from l2exp.backtest.loop import LoopState
from l2exp.backtest.params import ExecutionParams
from l2exp.backtest.results import BacktestResult
from l2exp.backtest.strategies import Strategy
from l2exp.risk.params import RiskParams
from l2exp.schema import SIDE_FIELDS, level_columns


def _f64(a: Any) -> np.ndarray:
    """A writable C-contiguous float64 array (the compiled loop's signature), copied only if needed
    (pandas' copy-on-write hands out read-only views)."""
    arr = np.asarray(a, dtype=np.float64)
    return arr if arr.flags.writeable and arr.flags.c_contiguous else np.array(arr, dtype=np.float64, order="C")


def level_major(book: pd.DataFrame, levels: int) -> np.ndarray:
    """The book as the engine reads it (``engine.BOOK``): (4, levels, snapshots), bid px, bid size, ask px, ask
    size. The canonical columns of a consolidated frame are one float64 block whose transpose this is, so
    the result is a view of the frame's memory; any other frame is copied once."""
    cols = [c for f in SIDE_FIELDS for c in level_columns(f, levels)]
    arr = book[cols].to_numpy(np.float64).T
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    arr = arr.reshape(4, levels, len(book))
    arr.flags.writeable = False  # the engine's signature is read-only (a frame's own memory must stay intact)
    return arr


def book_through_mask(ts: np.ndarray, trade_ts: np.ndarray, setting: str | bool) -> np.ndarray:
    """Per snapshot, whether the book alone may fill a resting order (``execution.book_through_fills``):
    ``true`` / ``false`` everywhere; ``auto`` where no print covers the snapshot -- before the first or
    after the last print (``trades.trades_coverage``'s uncovered spans), or everywhere without prints.
    Where prints exist a cancelled level is not a fill; where they do not, the book is the only evidence."""
    if setting != "auto":
        return np.full(len(ts), 1 if setting else 0, np.int64)
    if not len(trade_ts):
        return np.ones(len(ts), np.int64)
    return ((ts < trade_ts.min()) | (ts > trade_ts.max())).astype(np.int64)


def backtest_book(book: pd.DataFrame, signal: np.ndarray, trades: pd.DataFrame | None, ex: ExecutionParams,
                  st: Strategy, rk: RiskParams, levels: int, instrument: Instrument | None = None,
                  fx: np.ndarray | None = None) -> BacktestResult:
    """Run the event loop over one instrument's time-ordered snapshots.

    ``instrument``: contract type and multiplier (default: linear, multiplier 1); ``fx``: settlement ->
    quote per snapshot (default: what the instrument derives from its own mid; a quanto priced off
    another symbol needs it passed, see :func:`l2exp.backtest.instruments.fx_series`).
    """
    if book["symbol"].nunique() > 1:
        raise ValueError("backtest_book takes one symbol")
    n = len(book)
    inst = instrument or Instrument(str(book["symbol"].iloc[0]) if n else "")
    has_trades = trades is not None and len(trades) > 0
    ts = book["timestamp"].to_numpy(np.int64)
    t0 = int(ts[0]) if n else 0
    # capacity: every snapshot can decide (at most MAX_INTENTS orders) and flatten; each order fills
    # at most once per level walked or once per print -- the loop refuses rather than drop beyond it
    max_orders = 4 * n + 16
    loop = LoopState.create(ex, st, rk, inst, has_trades, max_orders, max_orders * min(levels, 10) + 16, levels,
                            float(t0 % 86_400_000_000_000))
    book_arr = level_major(book, levels)
    mid = 0.5 * (book_arr[0, 0] + book_arr[2, 0])
    fx = _f64(inst.fx_settle_to_quote(mid) if fx is None else fx)
    tr = trades if trades is not None else pd.DataFrame({"ts": [], "price": [], "size": [], "side": []})
    if len(tr) and not tr["ts"].is_monotonic_increasing:  # the loop merges two time-ordered streams
        tr = tr.sort_values("ts", kind="stable").reset_index(drop=True)
    position, cash, equity = np.zeros(n), np.zeros(n), np.zeros(n)
    bt = book_through_mask(ts, tr["ts"].to_numpy(np.int64), ex.book_through_fills)
    fd_ts, fd_rate = funding_events(inst.funding, t0, int(ts[-1]) if n else t0, inst.symbol)
    fd_pos, fd_pay = np.zeros(len(fd_ts)), np.zeros(len(fd_ts))
    simulate((ts - t0).astype(np.float64), book_arr, _f64(signal), _f64(fx),
             (tr["ts"].to_numpy(np.int64) - t0).astype(np.float64), _f64(tr["price"]), _f64(tr["size"]),
             _f64(tr["side"]), (fd_ts - t0).astype(np.float64), _f64(fd_rate), fd_pos, fd_pay,
             loop.E, loop.R, loop.SP, loop.QP, loop.strategy, loop.queue_model, loop.order_type, loop.orders,
             loop.fills, loop.blocks, loop.A, loop.RS, loop.D, loop.intents, loop.FP, bt, position, cash,
             equity, int(ex.seed))
    counters = loop.counters()
    if counters["overflow"]:
        raise RuntimeError(f"backtest order/fill tables overflowed ({counters}): results would be incomplete")
    fdf, odf = loop.tables(t0)
    mark = mid[np.clip(np.searchsorted(ts, fd_ts, side="left") - 1, 0, max(n - 1, 0))] if n else np.zeros(0)
    funding = pd.DataFrame({"ts": fd_ts, "rate": fd_rate, "position": fd_pos, "mark": mark, "payment": fd_pay})
    return BacktestResult(str(book["symbol"].iloc[0]) if n else "", ts, mid, position, cash, equity, fdf, odf,
                          loop.blocks_dict(), counters, inst, fx, funding)

