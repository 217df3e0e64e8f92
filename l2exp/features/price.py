"""Price & spread family (stateless: one snapshot in, features out).

Notation: b_i, a_i bid/ask price at level i (1 = best); Qb_i, Qa_i their sizes;
m = (a_1 + b_1)/2 the mid; Db_k = sum_{i<=k} Qb_i, Da_k likewise; VWb_k = sum_{i<=k} b_i Qb_i / Db_k
and VWa_k likewise (absent levels skipped). bps = 1e-4 of mid.

| feature | formula | unit |
|---|---|---|
| ``spread_bps`` | (a_1 - b_1) / m * 1e4 | bps |
| ``spread_ticks`` | (a_1 - b_1) / tick | ticks |
| ``microprice_gap_bps`` | (P_micro - m) / m * 1e4, P_micro = (a_1 Qb_1 + b_1 Qa_1)/(Qb_1 + Qa_1) | bps |
| ``wmid_gap_bps_k`` | (W_k - m)/m*1e4, W_k = (VWb_k Da_k + VWa_k Db_k)/(Db_k + Da_k): the microprice at depth k | bps |
| ``vwap_bid_dist_bps_k`` | (m - VWb_k)/m*1e4: cost of selling k levels, per unit | bps |
| ``vwap_ask_dist_bps_k`` | (VWa_k - m)/m*1e4 | bps |
| ``level_gap_bid_ticks`` / ``level_gap_ask_ticks`` | (b_1 - b_2)/tick, (a_2 - a_1)/tick: holes | ticks |
| ``book_width_bps_k`` | (a_k - b_k)/m*1e4 (NaN if level k absent) | bps |
"""

from __future__ import annotations

import numba as nb
import numpy as np

from l2exp.features._book import P_TICK, SEG_VWAP, SEG_WIDTH, SEG_WMID, seg


@nb.njit(cache=True)
def price_block(bp: np.ndarray, bs: np.ndarray, ap: np.ndarray, as_: np.ndarray, r0: int, r1: int,
                cum: np.ndarray, pf: np.ndarray, pi: np.ndarray, out: np.ndarray, o: int) -> int:
    """Write the price family of rows r0..r1-1 into columns ``o...`` of ``out``; return the next column.

    ``cum`` holds the block's prefix sums (:func:`l2exp.features._book.block_prefix`)."""
    tick = pf[P_TICK]
    L = bp.shape[1]
    nr = r1 - r0
    for j in range(nr):
        r = np.uint64(r0 + j)
        b1 = bp[r, 0]
        a1 = ap[r, 0]
        m = 0.5 * (a1 + b1)
        out[r, o] = (a1 - b1) / m * 1e4
        out[r, o + 1] = (a1 - b1) / tick
        qb = bs[r, 0]
        qa = as_[r, 0]
        micro = (a1 * qb + b1 * qa) / (qb + qa)
        out[r, o + 2] = (micro - m) / m * 1e4
    o += 3
    s, n = seg(pi, SEG_WMID)
    for t in range(n):
        k = min(pi[s + t], L)
        for j in range(nr):
            r = np.uint64(r0 + j)
            m = 0.5 * (ap[r, 0] + bp[r, 0])
            db, pvb, da, pva = cum[0, k, j], cum[1, k, j], cum[2, k, j], cum[3, k, j]
            w = ((pvb / db) * da + (pva / da) * db) / (db + da)
            out[r, o] = (w - m) / m * 1e4
        o += 1
    s, n = seg(pi, SEG_VWAP)
    for t in range(n):
        k = min(pi[s + t], L)
        for j in range(nr):
            r = np.uint64(r0 + j)
            m = 0.5 * (ap[r, 0] + bp[r, 0])
            out[r, o] = (m - cum[1, k, j] / cum[0, k, j]) / m * 1e4
            out[r, o + 1] = (cum[3, k, j] / cum[2, k, j] - m) / m * 1e4
        o += 2
    for j in range(nr):
        r = np.uint64(r0 + j)
        out[r, o] = (bp[r, 0] - bp[r, 1]) / tick if L > 1 else np.nan
        out[r, o + 1] = (ap[r, 1] - ap[r, 0]) / tick if L > 1 else np.nan
    o += 2
    s, n = seg(pi, SEG_WIDTH)
    for t in range(n):
        k = pi[s + t]
        for j in range(nr):
            r = np.uint64(r0 + j)
            m = 0.5 * (ap[r, 0] + bp[r, 0])
            out[r, o] = (ap[r, k - 1] - bp[r, k - 1]) / m * 1e4 if k <= L else np.nan
        o += 1
    return o
