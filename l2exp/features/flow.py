"""Flow & volatility family (stateful, O(1) per snapshot with bounded state).

History lives in a ring buffer of the last ``capacity`` snapshots' base series; each of the short,
medium, long and rate windows keeps a pointer to its oldest snapshot and running sums of every
series, updated as snapshots enter and leave (and recomputed from the ring every ``capacity``
snapshots so float error cannot accumulate). A window is (t - W, t] in snapshots or in time; its
*lag* value is the snapshot just before it. A feature whose window does not yet reach back a full
W is NaN and its row is flagged warm-up: nothing is filled from the future.

Per snapshot j (with j-1 the previous one): r_j = ln(m_j / m_{j-1}) * 1e4 (bps);
multi-level order-flow imbalance (Cont, Kukanov & Stoikov 2014 at level 1; summed over levels
1..k as in Xu, Gould & Howison 2019): e_k = sum_{i<=k} [1{b_i >= b'_i} Qb_i - 1{b_i <= b'_i} Qb'_i
- 1{a_i <= a'_i} Qa_i + 1{a_i >= a'_i} Qa'_i] (primes: previous snapshot); normalised by the current
mean side depth N_k = (Db_k + Da_k)/2.

| feature | formula | unit |
|---|---|---|
| ``ofi_k`` | e_k / N_k (this snapshot's flow) | depth fractions |
| ``ofi_k_wW`` | sum of e_k over the window / N_k | depth fractions |
| ``mid_ret_bps_1`` | r_t | bps |
| ``mid_ret_bps_wW`` / ``micro_ret_bps_wW`` | ln(x_t / x_lag) * 1e4 of mid / microprice | bps |
| ``rv_bps_wW`` | sqrt(sum r_j^2 over the window): realised volatility | bps |
| ``ewma_vol_bps`` | sqrt(v_t), v_t = (1-a) v_{t-1} + a r_t^2, a = 1 - 2^(-1/halflife) | bps |
| ``spread_dev_bps_wW`` | spread_bps_t - mean of spread_bps over the window | bps |
| ``depth_chg_bid_k_wW`` / ``depth_chg_ask_k_wW`` | ln(1+Db_k)_t - ln(1+Db_k)_lag | log ratio |
| ``imbalance_chg_wW`` | imbalance_1_t - imbalance_1_lag | [-2, 2] |
| ``event_rate_hz`` | snapshots in the last ``rate_window_ms`` / its length in s: arrival-rate proxy | 1/s |
| ``mid_changes_wW`` | number of mid changes in the window | count |
| ``mean_dt_ms_wW`` | mean time between snapshots in the window | ms |
| ``time_since_mid_change_ms`` | time since the mid last moved (NaN before the first move) | ms |
| ``bid_depletion_wW`` / ``ask_depletion_wW`` | share of window snapshots whose best queue shrank, price same | [0, 1] |

How a block is computed (:func:`flow_block`; the batch engine's blocks are :data:`BLOCK` rows, the
streaming engine's one): (A) the base series of the block's rows, column by column, into the ring;
(B) each window's oldest snapshot, row by row (a pointer that only moves forward); (C) each running
sum the features read, series by series -- only the 13 (window, series) pairs used, each updated in
exactly the order a row-at-a-time engine would, so both engines agree to the last bit; (D) the
outputs, column by column. The ring holds 2 x max(capacity, block) snapshots so that a block's new
rows never overwrite the history its windows still read.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from l2exp.features._book import BLOCK, P_ALPHA, P_RATE_NS, P_TIME_MODE, P_WS, SEG_OFI, seg, tail_int

# base series kept per snapshot in the ring
S_MID, S_MICRO, S_R2, S_SPREAD, S_CHG, S_DT, S_DEPLB, S_DEPLA, S_IMB1, S_LDB, S_LDA, S_OFI = range(12)
# integer state: events seen, window pointers (short, medium, long, rate), last mid-change time; the
# streaming engine's own: this snapshot's time, the previous one's, sessions started
I_COUNT, I_P0, I_LASTCHG, I_TS, I_LAST_TS, I_SESSIONS = 0, 1, 5, 6, 7, 8
N_WINDOWS = 4
# rows of the block scratch: ``tmp`` rows 0-3 are the depth family's, then the flow family's EWMA
# variance and order-flow accumulator; ``ptr`` rows 0-3 the window pointers, then the last mid change
T_EWMA, T_OFI, T_ROWS = 4, 5, 6
P_LASTCHG = N_WINDOWS
NO_CHANGE = np.iinfo(np.int64).min


def n_series(n_ofi: int) -> int:
    return S_OFI + n_ofi


def ring_size(capacity: int) -> int:
    """Ring slots: twice the history a window may hold (``capacity``) or a block, whichever is larger."""
    return 2 * max(capacity, BLOCK)


def new_state(levels: int, capacity: int, n_ofi: int) -> tuple[np.ndarray, ...]:
    """Fresh flow state: (ring, ring_ts, sums, istate, fstate, prev)."""
    ns = n_series(n_ofi)
    size = ring_size(capacity)
    state = (np.zeros((ns, size)), np.zeros(size, dtype=np.int64), np.empty((N_WINDOWS, ns)),
             np.zeros(10, dtype=np.int64), np.empty(2), np.empty((4, levels)))
    restart(*state[2:])
    return state


@nb.njit(cache=True)
def restart(sums: np.ndarray, istate: np.ndarray, fstate: np.ndarray, prev: np.ndarray) -> None:
    """Start a new session: no history. The ring keeps stale values, never read: a slot is written
    before any window reaches it."""
    sums[:] = 0.0
    istate[:I_TS] = 0
    istate[I_LASTCHG] = NO_CHANGE
    fstate[:] = np.nan
    prev[:] = np.nan


def new_scratch(levels: int, n_ofi: int, block: int) -> tuple[np.ndarray, ...]:
    """Per-block work arrays of :func:`flow_block`: (previous book, window pointers and last mid change,
    window sums)."""
    ns = n_series(n_ofi)
    return (np.empty((4, levels, block)), np.empty((N_WINDOWS + 1, block), dtype=np.int64),
            np.empty((3, ns, block)))


@nb.njit(cache=True, inline="always")
def _snap(x: float) -> float:
    """A running sum of squared returns that should be 0 keeps ~1e-14 of rounding after large terms
    left the window; below 1e-9 bps^2 (a BitMEX tick is ~0.4 bps^2) it is 0."""
    return x if x > 1e-9 else 0.0


@nb.njit(cache=True, inline="always")
def _window_sum(w: int, s: int, n0: int, nr: int, s0: int, mask: int, cap: int, ring: np.ndarray,
                sums: np.ndarray, p: int, ptr: np.ndarray, sv: np.ndarray) -> None:
    """Running sum of series ``s`` over window ``w`` for the block's rows: add the new snapshot, drop
    the ones that left, and every ``cap`` snapshots recompute it exactly from the ring so that float
    error cannot accumulate."""
    acc = sums[w, s]
    for j in range(nr):
        n = n0 + j
        step = ring[s, np.uint64(s0 + j)]  # in minus out, then one addition: the loop-carried chain is one add
        pn = ptr[w, j]
        while p < pn:
            step -= ring[s, np.uint64(p & mask)]
            p += 1
        acc += step
        if ((n + 1) & (cap - 1)) == 0:
            exact = 0.0
            for jj in range(pn, n + 1):
                exact += ring[s, np.uint64(jj & mask)]
            acc = exact
        sv[w, s, j] = acc
    sums[w, s] = acc


@nb.njit(cache=True)
def flow_block(ts: np.ndarray, bp: np.ndarray, bs: np.ndarray, ap: np.ndarray, as_: np.ndarray, r0: int,
               r1: int, cum: np.ndarray, pf: np.ndarray, pi: np.ndarray, ring: np.ndarray, ring_ts: np.ndarray,
               sums: np.ndarray, istate: np.ndarray, fstate: np.ndarray, prev: np.ndarray, pb: np.ndarray,
               ptr: np.ndarray, sv: np.ndarray, tmp: np.ndarray, out: np.ndarray, ready: np.ndarray, o: int) -> None:
    """Update the state with rows r0..r1-1 (times ``ts[r]``), write the flow family into columns
    ``o...`` of ``out`` and ``ready[r]`` (every window full: not warm-up).

    The block's ring slots must not wrap (the batch engine cuts blocks there; a streaming block is one row)."""
    L = bp.shape[1]
    nr = r1 - r0
    mask = ring.shape[1] - 1
    cap = tail_int(pi, 2)
    n0 = istate[I_COUNT]
    s0 = n0 & mask
    fd = min(tail_int(pi, 1), L)
    so, nofi = seg(pi, SEG_OFI)
    kmax = 1
    for q in range(nofi):
        kmax = max(kmax, pi[so + q])
    kmax = min(kmax, L)
    ew, e, lcv = tmp[T_EWMA], tmp[T_OFI], ptr[P_LASTCHG]
    # -- (A) base series of the block's rows
    for j in range(nr):
        r = np.uint64(r0 + j)
        b1 = bp[r, 0]
        a1 = ap[r, 0]
        qb1 = bs[r, 0]
        qa1 = as_[r, 0]
        m = 0.5 * (a1 + b1)
        slot = np.uint64(s0 + j)
        ring[S_MID, slot] = np.log(m)  # the ring keeps ln(mid), ln(microprice): window returns are differences
        ring[S_MICRO, slot] = np.log((a1 * qb1 + b1 * qa1) / (qb1 + qa1))
        ring[S_SPREAD, slot] = (a1 - b1) / m * 1e4
        ring[S_IMB1, slot] = (qb1 - qa1) / (qb1 + qa1)
        ring[S_LDB, slot] = np.log1p(cum[0, fd, j])
        ring[S_LDA, slot] = np.log1p(cum[2, fd, j])
        ring_ts[slot] = ts[r]
    # the previous snapshot of each row: the state's for the first, the book's row before for the rest
    for f in range(4):
        for lv in range(kmax):
            pb[f, lv, 0] = prev[f, lv]
    for lv in range(kmax):
        for j in range(1, nr):
            r = np.uint64(r0 + j - 1)
            pb[0, lv, j] = bp[r, lv]
            pb[1, lv, j] = bs[r, lv]
            pb[2, lv, j] = ap[r, lv]
            pb[3, lv, j] = as_[r, lv]
    for j in range(nr):
        r = np.uint64(r0 + j)
        slot = np.uint64(s0 + j)
        ps = np.uint64((s0 + j - 1) & mask)
        lm = ring[S_MID, slot]
        pm = ring[S_MID, ps]
        ret = (lm - pm) * 1e4
        ring[S_R2, slot] = ret * ret
        ring[S_CHG, slot] = 1.0 if lm != pm else 0.0
        ring[S_DT, slot] = (ts[r] - ring_ts[ps]) / 1e6
        ring[S_DEPLB, slot] = 1.0 if (bp[r, 0] == pb[0, 0, j] and bs[r, 0] < pb[1, 0, j]) else 0.0
        ring[S_DEPLA, slot] = 1.0 if (ap[r, 0] == pb[2, 0, j] and as_[r, 0] < pb[3, 0, j]) else 0.0
    # multi-level order-flow imbalance, accumulated level by level from the touch
    for j in range(nr):
        e[j] = 0.0
    for lv in range(kmax):
        for j in range(nr):
            r = np.uint64(r0 + j)
            bj, qbj, aj, qaj = bp[r, lv], bs[r, lv], ap[r, lv], as_[r, lv]
            pbj, pqb, paj, pqa = pb[0, lv, j], pb[1, lv, j], pb[2, lv, j], pb[3, lv, j]
            e[j] += ((qbj if bj >= pbj else 0.0) - (pqb if bj <= pbj else 0.0)) if (bj == bj and pbj == pbj) else 0.0
            e[j] += ((pqa if aj >= paj else 0.0) - (qaj if aj <= paj else 0.0)) if (aj == aj and paj == paj) else 0.0
        for q in range(nofi):
            if min(pi[so + q], L) == lv + 1:
                for j in range(nr):
                    ring[S_OFI + q, np.uint64(s0 + j)] = e[j]
    if n0 == 0:  # the stream's first snapshot has no previous one: no flow yet
        for s in (S_R2, S_CHG, S_DT, S_DEPLB, S_DEPLA):
            ring[s, s0] = 0.0
        for q in range(nofi):
            ring[S_OFI + q, s0] = 0.0
    for lv in range(L):
        prev[0, lv] = bp[r1 - 1, lv]
        prev[1, lv] = bs[r1 - 1, lv]
        prev[2, lv] = ap[r1 - 1, lv]
        prev[3, lv] = as_[r1 - 1, lv]
    # -- (B) each window's oldest snapshot per row; the last mid change; the EWMA variance
    time_mode = pf[P_TIME_MODE] > 0.5
    for w in range(N_WINDOWS):
        p = istate[I_P0 + w]
        if w == 3:
            size = pf[P_RATE_NS]
            by_time = True
        else:
            size = pf[P_WS + w]
            by_time = time_mode
        for j in range(nr):
            n = n0 + j
            t = ts[r0 + j]
            while p <= n and ((by_time and ring_ts[np.uint64(p & mask)] <= t - size)
                              or ((not by_time) and p <= n - size) or n - p + 1 > cap - 1):
                p += 1
            ptr[w, j] = p
    lc = istate[I_LASTCHG]
    v = fstate[0]
    a = pf[P_ALPHA]
    for j in range(nr):
        n = n0 + j
        if ring[S_CHG, np.uint64(s0 + j)] > 0.5:
            lc = ts[r0 + j]
        lcv[j] = lc
        r2 = ring[S_R2, np.uint64(s0 + j)]
        if n == 1:
            v = r2
        elif n > 1:
            v = (1.0 - a) * v + a * r2
        ew[j] = v
    istate[I_LASTCHG] = lc
    fstate[0] = v
    # -- (C) the running sums the outputs read
    for q in range(nofi):
        _window_sum(0, S_OFI + q, n0, nr, s0, mask, cap, ring, sums, istate[I_P0], ptr, sv)
        _window_sum(1, S_OFI + q, n0, nr, s0, mask, cap, ring, sums, istate[I_P0 + 1], ptr, sv)
    for s in (S_R2, S_SPREAD, S_DT, S_DEPLB, S_DEPLA):
        _window_sum(1, s, n0, nr, s0, mask, cap, ring, sums, istate[I_P0 + 1], ptr, sv)
    for s in (S_R2, S_CHG):
        _window_sum(2, s, n0, nr, s0, mask, cap, ring, sums, istate[I_P0 + 2], ptr, sv)
    for w in range(N_WINDOWS):
        istate[I_P0 + w] = ptr[w, nr - 1]
    istate[I_COUNT] = n0 + nr
    # -- (D) outputs
    nan = np.nan
    for q in range(nofi):
        k = min(pi[so + q], L)
        for j in range(nr):
            r = np.uint64(r0 + j)
            norm = 0.5 * (cum[0, k, j] + cum[2, k, j])
            out[r, o + q] = ring[S_OFI + q, np.uint64(s0 + j)] / norm if n0 + j >= 1 else nan
            out[r, o + nofi + 2 * q] = sv[0, S_OFI + q, j] / norm if ptr[0, j] >= 1 else nan
            out[r, o + nofi + 2 * q + 1] = sv[1, S_OFI + q, j] / norm if ptr[1, j] >= 1 else nan
    o += 3 * nofi
    for j in range(nr):
        r = np.uint64(r0 + j)
        slot = np.uint64(s0 + j)
        n = n0 + j
        lm = ring[S_MID, slot]
        p_s, p_m, p_l, p_r = ptr[0, j], ptr[1, j], ptr[2, j], ptr[3, j]
        ok_s, ok_m, ok_l, ok_r = p_s >= 1, p_m >= 1, p_l >= 1, p_r >= 1
        lag_s, lag_m, lag_l = np.uint64((p_s - 1) & mask), np.uint64((p_m - 1) & mask), np.uint64((p_l - 1) & mask)
        cnt_m = n - p_m + 1
        out[r, o] = (lm - ring[S_MID, np.uint64((s0 + j - 1) & mask)]) * 1e4 if n >= 1 else nan
        out[r, o + 1] = (lm - ring[S_MID, lag_s]) * 1e4 if ok_s else nan
        out[r, o + 2] = (lm - ring[S_MID, lag_m]) * 1e4 if ok_m else nan
        out[r, o + 3] = (lm - ring[S_MID, lag_l]) * 1e4 if ok_l else nan
        out[r, o + 4] = (ring[S_MICRO, slot] - ring[S_MICRO, lag_s]) * 1e4 if ok_s else nan
        out[r, o + 5] = (ring[S_MICRO, slot] - ring[S_MICRO, lag_m]) * 1e4 if ok_m else nan
        out[r, o + 6] = np.sqrt(_snap(sv[1, S_R2, j])) if ok_m else nan
        out[r, o + 7] = np.sqrt(_snap(sv[2, S_R2, j])) if ok_l else nan
        out[r, o + 8] = np.sqrt(ew[j]) if n >= 1 else nan
        out[r, o + 9] = ring[S_SPREAD, slot] - sv[1, S_SPREAD, j] / cnt_m if ok_m else nan
        out[r, o + 10] = ring[S_LDB, slot] - ring[S_LDB, lag_s] if ok_s else nan
        out[r, o + 11] = ring[S_LDA, slot] - ring[S_LDA, lag_s] if ok_s else nan
        out[r, o + 12] = ring[S_IMB1, slot] - ring[S_IMB1, lag_s] if ok_s else nan
        out[r, o + 13] = (n - p_r + 1) / (pf[P_RATE_NS] / 1e9) if ok_r else nan
        out[r, o + 14] = sv[2, S_CHG, j] if ok_l else nan
        out[r, o + 15] = sv[1, S_DT, j] / cnt_m if ok_m else nan
        out[r, o + 16] = (ts[r] - lcv[j]) / 1e6 if lcv[j] != NO_CHANGE else nan
        out[r, o + 17] = sv[1, S_DEPLB, j] / cnt_m if ok_m else nan
        out[r, o + 18] = sv[1, S_DEPLA, j] / cnt_m if ok_m else nan
        ready[r] = ok_s and ok_m and ok_l and ok_r
