"""Numba helpers shared by the feature families: cumulative depth and VWAP over the first k levels
of one snapshot (row ``i`` of column-major matrices), and access to the packed parameters.

An absent level (NaN) contributes no size and no price: a 25-level feature on a row whose book has
only 20 levels uses the 20 that exist.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# index of each depth list in the packed int params (see FeatureParams.packed)
SEG_WMID, SEG_VWAP, SEG_WIDTH, SEG_IMB, SEG_DEPTH, SEG_OFI = 0, 1, 2, 3, 4, 5
N_SEGS = 6
# float params
P_TICK, P_TIME_MODE, P_WS, P_WM, P_WL, P_RATE_NS, P_ALPHA, P_NLIQ = 0, 1, 2, 3, 4, 5, 6, 7


@nb.njit(cache=True, inline="always")
def seg(pi: np.ndarray, which: int) -> tuple[int, int]:
    """(start, count) of the ``which``-th depth list in the packed int params."""
    pos = 0
    for _ in range(which):
        pos += pi[pos] + 1
    return pos + 1, pi[pos]


@nb.njit(cache=True, inline="always")
def tail_int(pi: np.ndarray, k: int) -> int:
    """k-th int after the depth lists: 0 slope_depth, 1 flow_depth, 2 capacity."""
    pos = 0
    for _ in range(N_SEGS):
        pos += pi[pos] + 1
    return pi[pos + k]


@nb.njit(cache=True, inline="always")
def fill_prefix(px: np.ndarray, sz: np.ndarray, i: int, size_out: np.ndarray, pv_out: np.ndarray) -> None:
    """Prefix sums of one side of snapshot i: size_out[k] = sum of sizes of levels 1..k, pv_out[k]
    = sum of price*size; absent (NaN) levels add nothing. Computed once per snapshot so that every
    depth-k feature is O(1)."""
    tot = 0.0
    pv = 0.0
    size_out[0] = 0.0
    pv_out[0] = 0.0
    for j in range(px.shape[1]):
        p = px[i, j]
        q = sz[i, j]
        if p == p and q == q:
            tot += q
            pv += p * q
        size_out[j + 1] = tot
        pv_out[j + 1] = pv


@nb.njit(cache=True, inline="always")
def at(prefix: np.ndarray, k: int) -> float:
    """Prefix value at depth k (clamped to the levels present)."""
    return prefix[min(k, prefix.shape[0] - 1)]


@nb.njit(cache=True, inline="always")
def within_bps(px: np.ndarray, i: int, size_prefix: np.ndarray, mid: float, bps: float, bid: bool) -> float:
    """Total size of one side priced within ``bps`` of mid: levels are sorted, so scan until the
    first level beyond the limit and read the prefix sum there."""
    lim = mid * (1.0 - bps * 1e-4) if bid else mid * (1.0 + bps * 1e-4)
    k = 0
    for j in range(px.shape[1]):
        p = px[i, j]
        if p != p:
            break
        if (bid and p < lim) or ((not bid) and p > lim):
            break
        k = j + 1
    return size_prefix[k]
