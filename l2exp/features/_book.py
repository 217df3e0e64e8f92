"""Numba helpers shared by the feature families: the packed parameters and the block layout.

The kernels run *column-wise over a block of rows*: every feature is one short loop over the
block's rows writing one output column, so the loops are branch-free enough for LLVM to vectorise
them and each column is written contiguously (the batch output is column-major). The batch engine
walks a table in blocks of :data:`BLOCK` rows; the streaming engine calls the very same functions
with a block of one row -- one definition, two engines.

Per block, :func:`block_prefix` fills the cumulative depth and price*size of the first k levels of
each side (``cum[side, k, row]``: 0 bid size, 1 bid price*size, 2 ask size, 3 ask price*size). An
absent level (NaN) contributes no size and no price: a 25-level feature on a row whose book has
only 20 levels uses the 20 that exist.
"""

from __future__ import annotations

import numba as nb
import numpy as np

BLOCK = 256  # rows per block: the block's prefix sums (4 x 11 x 256 x 8 B = 90 KB) stay in L2
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


@nb.njit(cache=True)
def block_prefix(bp: np.ndarray, bs: np.ndarray, ap: np.ndarray, as_: np.ndarray, r0: int, r1: int,
                 cum: np.ndarray) -> None:
    """``cum[s, k, j]`` for rows r0 + j of the block: sums over levels 1..k, summed level by level
    from the touch (the order every depth-k feature has always used); a level counts only when both
    its price and its size are present."""
    L = bp.shape[1]
    nr = r1 - r0
    for j in range(nr):
        cum[0, 0, j] = 0.0
        cum[1, 0, j] = 0.0
        cum[2, 0, j] = 0.0
        cum[3, 0, j] = 0.0
    for lv in range(L):
        for j in range(nr):
            r = np.uint64(r0 + j)
            p = bp[r, lv]
            q = bs[r, lv]
            ok = (p == p) & (q == q)
            cum[0, lv + 1, j] = cum[0, lv, j] + (q if ok else 0.0)
            cum[1, lv + 1, j] = cum[1, lv, j] + (p * q if ok else 0.0)
            p = ap[r, lv]
            q = as_[r, lv]
            ok = (p == p) & (q == q)
            cum[2, lv + 1, j] = cum[2, lv, j] + (q if ok else 0.0)
            cum[3, lv + 1, j] = cum[3, lv, j] + (p * q if ok else 0.0)
