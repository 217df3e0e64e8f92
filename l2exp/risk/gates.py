"""Pre-trade gates, in order: kill switch, crossed book, stale feed (a gap in the feed longer than
``stale_ms``, or a top of book frozen for that long), spread, depth at the touch, order rate (orders
submitted in the last second). The first that blocks is the reason counted."""

from __future__ import annotations

import numba as nb
import numpy as np

from l2exp.backtest.types import B_CROSSED, B_DEPTH, B_KILLED, B_RATE, B_SPREAD, B_STALE


@nb.njit(cache=True)
def track_top_of_book(rs, t: float, bid: float, ask: float, bid_size: float, ask_size: float) -> None:  # noqa: ANN001
    """Remember when the best prices and sizes last changed (a frozen feed repeats them)."""
    if not (bid == rs.tob_bid and ask == rs.tob_ask and bid_size == rs.tob_bid_size and ask_size == rs.tob_ask_size):
        rs.tob_bid, rs.tob_ask, rs.tob_bid_size, rs.tob_ask_size = bid, ask, bid_size, ask_size
        rs.tob_ts = t


@nb.njit(cache=True)
def gate(t: float, prev_ts: float, rs, bid: float, ask: float, bid_size: float, ask_size: float, crossed: bool,  # noqa: ANN001
         rp, orders: np.ndarray, n_orders: int) -> int:
    """The blocking reason (``B_*``) or -1."""
    if rs.killed == 1:
        return B_KILLED
    if crossed:
        return B_CROSSED
    if rp.enabled == 0:
        return -1
    if (prev_ts == prev_ts and t - prev_ts > rp.stale_ns) or t - rs.tob_ts > rp.stale_ns:
        return B_STALE
    mid = 0.5 * (bid + ask)
    if (ask - bid) / mid * 1e4 > rp.max_spread_bps:
        return B_SPREAD
    if min(bid_size, ask_size) < rp.min_depth:
        return B_DEPTH
    recent = 0
    for o in range(n_orders - 1, -1, -1):
        if orders[o].submit_ts <= t - 1e9:
            break
        recent += 1
    if recent >= rp.max_orders_per_s:
        return B_RATE
    return -1
