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
"""

from __future__ import annotations

import numba as nb
import numpy as np

from l2exp.features._book import P_NLIQ, SEG_DEPTH, SEG_IMB, at, seg, tail_int, within_bps

_HARMONIC = 1.0 / np.arange(1, 65)  # book-pressure weights 1/i, a constant table (no division per level)


@nb.njit(cache=True)
def depth_features(bp: np.ndarray, bs: np.ndarray, ap: np.ndarray, as_: np.ndarray, i: int, cum: np.ndarray,
                   pf: np.ndarray, pi: np.ndarray, out: np.ndarray, o: int) -> int:
    """Write the depth family of snapshot ``i`` into ``out[o:]``; return the next offset."""
    L = bp.shape[1]
    qb = bs[i, 0]
    qa = as_[i, 0]
    m = 0.5 * (ap[i, 0] + bp[i, 0])
    out[o] = (qb - qa) / (qb + qa)
    o += 1
    s, n = seg(pi, SEG_IMB)
    for t in range(n):
        k = pi[s + t]
        db, da = at(cum[0], k), at(cum[2], k)
        out[o] = (db - da) / (db + da)
        o += 1
    s, n = seg(pi, SEG_DEPTH)
    for t in range(n):
        k = pi[s + t]
        out[o] = np.log1p(at(cum[0], k))
        out[o + 1] = np.log1p(at(cum[2], k))
        o += 2
    K = min(tail_int(pi, 0), L)
    db, da = at(cum[0], K), at(cum[2], K)
    lb = bp[i, 0]  # deepest present level within K
    la = ap[i, 0]
    for j in range(K):
        if bp[i, j] == bp[i, j]:
            lb = bp[i, j]
        if ap[i, j] == ap[i, j]:
            la = ap[i, j]
    dist_b = (bp[i, 0] - lb) / m * 1e4
    dist_a = (la - ap[i, 0]) / m * 1e4
    out[o] = np.log1p(db / dist_b) if dist_b > 0 else np.nan
    out[o + 1] = np.log1p(da / dist_a) if dist_a > 0 else np.nan
    num = 0.0
    den = 0.0
    for j in range(L):
        w = _HARMONIC[j] if j < _HARMONIC.shape[0] else 1.0 / (j + 1)
        b = bs[i, j] if bs[i, j] == bs[i, j] else 0.0
        a = as_[i, j] if as_[i, j] == as_[i, j] else 0.0
        num += w * (b - a)
        den += w * (b + a)
    out[o + 2] = num / den
    o += 3
    nliq = int(pf[P_NLIQ])
    for t in range(nliq):
        x = pf[P_NLIQ + 1 + t]
        bq = within_bps(bp, i, cum[0], m, x, True)
        aq = within_bps(ap, i, cum[2], m, x, False)
        out[o] = np.log1p(bq)
        out[o + 1] = np.log1p(aq)
        out[o + 2] = (bq - aq) / (bq + aq) if bq + aq > 0 else np.nan
        o += 3
    out[o] = qb / cum[0, L]
    out[o + 1] = qa / cum[2, L]
    return o + 2
