"""The book builder: per-level updates applied in order to a full-depth book, canonical N-level
snapshots out.

Input is columnar (one row per price-level update, grouped into *messages*), the hftbacktest way:
``msg`` (message number, non-decreasing), ``side`` (+1 bid, -1 ask), ``price``, ``size`` (the
level's new absolute size; 0 deletes it) and per-message arrays (exchange time ns, a clear flag for
snapshots, whether the message is applied at all). One compiled pass applies every applied message
and writes a snapshot after its last update (``emit_every_ns=0``: one per message, stamped with the
message's exchange time) or at every ``emit_every_ns`` boundary the stream crosses (the book as of
that instant, stamped with the boundary).

Book state: two sorted arrays per side, *best level last* (bids ascending, asks descending) of at
most ``max_depth`` levels; an update is a binary search and a shift of the levels *better* than it
-- few, since most updates are near the touch (best-first order would move the whole deep book on
every touch update: 3x slower on USD-M). Why not a price-indexed grid (hftbacktest's
HashMapMarketDepth / ROIVector): REST snapshots span 5 % of price at 1,000 levels, and sorted arrays
make the top N a slice, which is what every emitted row needs. Memory is bounded by ``max_depth``;
levels pushed beyond it (the worst) are dropped and counted (``beyond_depth``).

Crossed or locked books (best bid >= best ask after a message) are not repaired here: the snapshot
is emitted as it is and the ingest validator rejects it with reason ``crossed_book`` (counted, kept
in the rejects with its line) -- a rebuilt book must never silently differ from what the venue sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numba as nb
import numpy as np

# counters (slots of the ``counts`` array)
APPLIED, DELETE_MISSING, BEYOND_DEPTH, CROSSED, EMITTED = range(5)
COUNTER_NAMES = ("deltas_applied", "delete_of_missing_level", "beyond_depth", "crossed_books", "snapshots_out")


@dataclass
class BookState:
    """The full-depth book carried between chunks and across consecutive files of one source."""

    max_depth: int = 5000
    bid_px: np.ndarray = field(init=False)
    bid_sz: np.ndarray = field(init=False)
    ask_px: np.ndarray = field(init=False)
    ask_sz: np.ndarray = field(init=False)
    n: np.ndarray = field(init=False)  # [n_bids, n_asks]
    next_emit_ns: np.ndarray = field(init=False)  # [next boundary] for time-sampled emission

    def __post_init__(self) -> None:
        self.bid_px = np.zeros(self.max_depth)
        self.bid_sz = np.zeros(self.max_depth)
        self.ask_px = np.zeros(self.max_depth)
        self.ask_sz = np.zeros(self.max_depth)
        self.n = np.zeros(2, np.int64)
        self.next_emit_ns = np.zeros(1, np.int64)


@nb.njit(cache=True, inline="always")
def _find(px: np.ndarray, n: int, price: float, ascending: bool) -> int:
    """Insertion index of ``price`` among the first ``n`` entries, sorted ascending or descending."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if (px[mid] < price) if ascending else (px[mid] > price):
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True)
def _set_level(px: np.ndarray, sz: np.ndarray, n: int, price: float, size: float, ascending: bool,
               counts: np.ndarray) -> int:
    """Set one level to its new absolute size (0 deletes); returns the new number of levels. Levels are
    stored worst first, best last: bids ascending, asks descending."""
    depth = px.shape[0]
    i = _find(px, n, price, ascending)
    if i < n and px[i] == price:
        if size > 0.0:
            sz[i] = size
        else:
            for j in range(i, n - 1):
                px[j] = px[j + 1]
                sz[j] = sz[j + 1]
            n -= 1
        return n
    if size <= 0.0:
        counts[DELETE_MISSING] += 1
        return n
    if n == depth:  # full: the worst level (index 0) falls off, unless the new one would be it
        counts[BEYOND_DEPTH] += 1
        if i == 0:
            return n
        for j in range(0, i - 1):
            px[j] = px[j + 1]
            sz[j] = sz[j + 1]
        px[i - 1] = price
        sz[i - 1] = size
        return n
    for j in range(n, i, -1):
        px[j] = px[j - 1]
        sz[j] = sz[j - 1]
    px[i] = price
    sz[i] = size
    return n + 1


@nb.njit(cache=True, inline="always")
def _copy_side(px: np.ndarray, sz: np.ndarray, n: int, row: int, out_p: np.ndarray, out_s: np.ndarray) -> None:
    """Top levels of one side (stored best last) into one output row, best first; NaN past its depth."""
    for k in range(out_p.shape[1]):
        if k < n:
            out_p[row, k] = px[n - 1 - k]
            out_s[row, k] = sz[n - 1 - k]
        else:
            out_p[row, k] = np.nan
            out_s[row, k] = np.nan


@nb.njit(cache=True)
def _emit(bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray, n: np.ndarray,
          row: int, out_bp: np.ndarray, out_bs: np.ndarray, out_ap: np.ndarray, out_as: np.ndarray,
          counts: np.ndarray) -> None:
    _copy_side(bid_px, bid_sz, n[0], row, out_bp, out_bs)
    _copy_side(ask_px, ask_sz, n[1], row, out_ap, out_as)
    if n[0] > 0 and n[1] > 0 and bid_px[n[0] - 1] >= ask_px[n[1] - 1]:
        counts[CROSSED] += 1
    counts[EMITTED] += 1


@nb.njit(cache=True)
def apply_messages(msg: np.ndarray, side: np.ndarray, price: np.ndarray, size: np.ndarray,
                   msg_ts: np.ndarray, msg_clear: np.ndarray, msg_apply: np.ndarray, msg_emit: np.ndarray,
                   emit_every_ns: int, bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray,
                   ask_sz: np.ndarray, n: np.ndarray, next_emit: np.ndarray, levels: int, counts: np.ndarray,
                   best: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply messages ``0..len(msg_ts)-1`` (updates sorted by ``msg``); returns the emitted snapshots
    (ts, source message, bid_px, bid_sz, ask_px, ask_sz), at most one per message (or per boundary).
    ``best[m] = (best bid, best ask)`` after message ``m`` (NaN if not applied): the venue's own
    top-of-book stream is checked against it whatever the emission mode."""
    n_msg = msg_ts.shape[0]
    cap = n_msg
    if emit_every_ns > 0 and n_msg > 0:
        span = msg_ts[n_msg - 1] - msg_ts[0]
        cap = n_msg + 2 + max(span, 0) // emit_every_ns
    out_ts = np.empty(cap, np.int64)
    out_msg = np.empty(cap, np.int64)
    out_bp = np.empty((cap, levels))
    out_bs = np.empty((cap, levels))
    out_ap = np.empty((cap, levels))
    out_as = np.empty((cap, levels))
    row = 0
    d = 0
    n_upd = msg.shape[0]
    for m in range(n_msg):
        start = d
        while d < n_upd and msg[d] == m:
            d += 1
        if not msg_apply[m]:
            continue
        ts = msg_ts[m]
        if emit_every_ns > 0:
            if next_emit[0] == 0:
                next_emit[0] = (ts // emit_every_ns + 1) * emit_every_ns
            while ts >= next_emit[0]:  # the book as it stood at each boundary this message passes
                if n[0] > 0 or n[1] > 0:
                    out_ts[row] = next_emit[0]
                    out_msg[row] = m
                    _emit(bid_px, bid_sz, ask_px, ask_sz, n, row, out_bp, out_bs, out_ap, out_as, counts)
                    row += 1
                next_emit[0] += emit_every_ns
                if row >= cap:
                    break
        if msg_clear[m]:
            n[0] = 0
            n[1] = 0
        for k in range(start, d):
            if side[k] > 0:
                n[0] = _set_level(bid_px, bid_sz, n[0], price[k], size[k], True, counts)
            else:
                n[1] = _set_level(ask_px, ask_sz, n[1], price[k], size[k], False, counts)
            counts[APPLIED] += 1
        best[m, 0] = bid_px[n[0] - 1] if n[0] > 0 else np.nan
        best[m, 1] = ask_px[n[1] - 1] if n[1] > 0 else np.nan
        if emit_every_ns == 0 and msg_emit[m]:
            out_ts[row] = ts
            out_msg[row] = m
            _emit(bid_px, bid_sz, ask_px, ask_sz, n, row, out_bp, out_bs, out_ap, out_as, counts)
            row += 1
    return out_ts[:row], out_msg[:row], out_bp[:row], out_bs[:row], out_ap[:row], out_as[:row]


@dataclass
class Snapshots:
    """What one call of :func:`build` emitted (arrays, row-aligned)."""

    ts: np.ndarray
    msg: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray


def build(state: BookState, msg: np.ndarray, side: np.ndarray, price: np.ndarray, size: np.ndarray,
          msg_ts: np.ndarray, msg_clear: np.ndarray, msg_apply: np.ndarray, msg_emit: np.ndarray, levels: int,
          emit_every_ns: int, counts: np.ndarray) -> tuple[Snapshots, np.ndarray]:
    """Run :func:`apply_messages` on ``state``; returns the snapshots and the best bid/ask per message."""
    best = np.full((len(msg_ts), 2), np.nan)
    out = apply_messages(np.ascontiguousarray(msg, np.int64), np.ascontiguousarray(side, np.int8),
                         np.ascontiguousarray(price, np.float64), np.ascontiguousarray(size, np.float64),
                         np.ascontiguousarray(msg_ts, np.int64), np.ascontiguousarray(msg_clear, np.bool_),
                         np.ascontiguousarray(msg_apply, np.bool_), np.ascontiguousarray(msg_emit, np.bool_),
                         int(emit_every_ns), state.bid_px, state.bid_sz, state.ask_px, state.ask_sz, state.n,
                         state.next_emit_ns, int(levels), counts, best)
    return Snapshots(*out), best


def replay(deltas: Any, levels: int, emit_snapshots: bool = True, sample_ms: float = 0, max_depth: int = 5000,
           ) -> tuple[Snapshots, dict[str, int]]:
    """Rebuild snapshots from stored canonical deltas (:data:`l2exp.schema.DELTA_SCHEMA`, one symbol, in
    applied order): message boundaries from the last-of-message flag, book clears from the clear
    flag. ``emit_snapshots=False`` skips the row after a snapshot message (Binance's REST snapshot
    has no exchange time on spot). Research use: the same book at other depths or sampling rates."""
    from l2exp.schema import DELTA_CLEAR, DELTA_LAST, DELTA_SNAPSHOT

    flags = np.asarray(deltas["flags"], np.uint8)
    last = (flags & DELTA_LAST) > 0
    msg = np.concatenate([[0], np.cumsum(last[:-1])]).astype(np.int64) if len(flags) else np.zeros(0, np.int64)
    ends = np.flatnonzero(last)
    starts = np.concatenate([[0], ends[:-1] + 1]) if len(ends) else ends
    ts = np.asarray(deltas["exch_ts"], np.int64)[ends]
    clear = (flags[starts] & DELTA_CLEAR) > 0
    snap = (flags[starts] & DELTA_SNAPSHOT) > 0
    counts = np.zeros(len(COUNTER_NAMES), np.int64)
    snaps, _ = build(BookState(max_depth), msg, np.asarray(deltas["side"]), np.asarray(deltas["price"]),
                     np.asarray(deltas["size"]), ts, clear, np.ones(len(ends), bool),
                     np.ones(len(ends), bool) if emit_snapshots else ~snap, levels,
                     int(round(sample_ms * 1e6)), counts)
    return snaps, dict(zip(COUNTER_NAMES, counts.tolist(), strict=True))
