"""Depth & imbalance family (stateless).

Notation as in :mod:`l2exp.features.price`; L = levels in the book.

| feature | formula | unit |
|---|---|---|
| ``imbalance_1`` | (Qb_1 - Qa_1)/(Qb_1 + Qa_1): queue imbalance at the touch | [-1, 1] |
| ``imbalance_k`` | (Db_k - Da_k)/(Db_k + Da_k): cumulative depth imbalance | [-1, 1] |
| ``log_depth_bid_k`` / ``log_depth_ask_k`` | ln(1 + Db_k), ln(1 + Da_k) | ln(size) |
| ``slope_bid_K`` / ``slope_ask_K`` | ln(1 + Db_K / d_b), d_b = (b_1 - b_K)/m*1e4 bps (NaN if 0) | ln(size/bps) |
| ``book_pressure`` | sum_i (Qb_i - Qa_i)/i / sum_i (Qb_i + Qa_i)/i, all L levels (near ones weigh more) | [-1, 1] |
| ``liq_bid_xbps`` / ``liq_ask_xbps`` | ln(1 + size of the side priced within x bps of m) | ln(size) |
| ``liq_imbalance_xbps`` | (B_x - A_x)/(B_x + A_x) of those sizes (NaN if both 0) | [-1, 1] |
| ``l1_share_bid`` / ``l1_share_ask`` | Qb_1/Db_L, Qa_1/Da_L: how much of the visible side sits at the touch | [0, 1] |

The ln(1 + x) features (log depths, slopes, liquidity within x bps) are written here as x; the
engine takes ln(1 + x) of those columns afterwards (:meth:`FeatureParams.log1p_names`): NumPy's
vectorised log1p over a whole column costs ~1.4 ns a value, a scalar call inside the row loop ~7.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from l2exp.features._book import P_NLIQ, SEG_DEPTH, SEG_IMB, seg, tail_int

_HARMONIC = 1.0 / np.arange(1, 65)  # book-pressure weights 1/i, a constant table (no division per level)


@nb.njit(cache=True)
def depth_block(bp: np.ndarray, bs: np.ndarray, ap: np.ndarray, as_: np.ndarray, r0: int, r1: int,
                cum: np.ndarray, pf: np.ndarray, pi: np.ndarray, tmp: np.ndarray, out: np.ndarray, o: int) -> int:
    """Write the depth family of rows r0..r1-1 into columns ``o...`` of ``out``; return the next column.

    Rows 0-3 of ``tmp`` (the block scratch) are its work space."""
    L = bp.shape[1]
    nr = r1 - r0
    for j in range(nr):
        r = np.uint64(r0 + j)
        qb = bs[r, 0]
        qa = as_[r, 0]
        out[r, o] = (qb - qa) / (qb + qa)
    o += 1
    s, n = seg(pi, SEG_IMB)
    for t in range(n):
        k = min(pi[s + t], L)
        for j in range(nr):
            db, da = cum[0, k, j], cum[2, k, j]
            out[np.uint64(r0 + j), o] = (db - da) / (db + da)
        o += 1
    s, n = seg(pi, SEG_DEPTH)
    for t in range(n):
        k = min(pi[s + t], L)
        for j in range(nr):
            out[np.uint64(r0 + j), o] = cum[0, k, j]  # ln(1 + x) taken by the engine
            out[np.uint64(r0 + j), o + 1] = cum[2, k, j]
        o += 2
    # slopes: size within the first K levels over the distance to the deepest present level within K
    K = min(tail_int(pi, 0), L)
    lb, la = tmp[0], tmp[1]
    for j in range(nr):
        lb[j] = bp[np.uint64(r0 + j), 0]
        la[j] = ap[np.uint64(r0 + j), 0]
    for lv in range(1, K):
        for j in range(nr):
            p = bp[np.uint64(r0 + j), lv]
            lb[j] = p if p == p else lb[j]
            p = ap[np.uint64(r0 + j), lv]
            la[j] = p if p == p else la[j]
    for j in range(nr):
        r = np.uint64(r0 + j)
        m = 0.5 * (ap[r, 0] + bp[r, 0])
        dist_b = (bp[r, 0] - lb[j]) / m * 1e4
        dist_a = (la[j] - ap[r, 0]) / m * 1e4
        out[r, o] = cum[0, K, j] / dist_b if dist_b > 0 else np.nan  # ln(1 + x) taken by the engine
        out[r, o + 1] = cum[2, K, j] / dist_a if dist_a > 0 else np.nan
    # book pressure over all L levels, weights 1/i
    num, den = tmp[0], tmp[1]
    for j in range(nr):
        num[j] = 0.0
        den[j] = 0.0
    for lv in range(L):
        w = _HARMONIC[lv] if lv < _HARMONIC.shape[0] else 1.0 / (lv + 1)
        for j in range(nr):
            b = bs[np.uint64(r0 + j), lv]
            a = as_[np.uint64(r0 + j), lv]
            b = b if b == b else 0.0
            a = a if a == a else 0.0
            num[j] += w * (b - a)
            den[j] += w * (b + a)
    for j in range(nr):
        out[np.uint64(r0 + j), o + 2] = num[j] / den[j]
    o += 3
    # liquidity within x bps of mid: sizes of the levels before the first one beyond the limit (levels
    # are sorted; an absent price ends the side), summed from the touch as the prefix sums are
    nliq = int(pf[P_NLIQ])
    bq, aq, alive_b, alive_a = tmp[0], tmp[1], tmp[2], tmp[3]
    for t in range(nliq):
        x = pf[P_NLIQ + 1 + t]
        for j in range(nr):
            bq[j] = 0.0
            aq[j] = 0.0
            alive_b[j] = 1.0
            alive_a[j] = 1.0
        for lv in range(L):
            for j in range(nr):
                r = np.uint64(r0 + j)
                m = 0.5 * (ap[r, 0] + bp[r, 0])
                p = bp[r, lv]
                q = bs[r, lv]
                go = alive_b[j] > 0.0 and p == p and not p < m * (1.0 - x * 1e-4)
                alive_b[j] = 1.0 if go else 0.0
                bq[j] += q if (go and q == q) else 0.0
                p = ap[r, lv]
                q = as_[r, lv]
                go = alive_a[j] > 0.0 and p == p and not p > m * (1.0 + x * 1e-4)
                alive_a[j] = 1.0 if go else 0.0
                aq[j] += q if (go and q == q) else 0.0
        for j in range(nr):
            r = np.uint64(r0 + j)
            out[r, o] = bq[j]  # ln(1 + x) taken by the engine
            out[r, o + 1] = aq[j]
            out[r, o + 2] = (bq[j] - aq[j]) / (bq[j] + aq[j]) if bq[j] + aq[j] > 0 else np.nan
        o += 3
    for j in range(nr):
        r = np.uint64(r0 + j)
        out[r, o] = bs[r, 0] / cum[0, L, j]
        out[r, o + 1] = as_[r, 0] / cum[2, L, j]
    return o + 2
