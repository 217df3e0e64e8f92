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
"""

from __future__ import annotations

import numba as nb
import numpy as np

from l2exp.features._book import P_ALPHA, P_RATE_NS, P_TIME_MODE, P_WS, SEG_OFI, at, seg, tail_int

# base series kept per snapshot in the ring
S_MID, S_MICRO, S_R2, S_SPREAD, S_CHG, S_DT, S_DEPLB, S_DEPLA, S_IMB1, S_LDB, S_LDA, S_OFI = range(12)
# integer state: events seen, window pointers (short, medium, long, rate), last mid-change time
I_COUNT, I_P0, I_LASTCHG = 0, 1, 5
N_WINDOWS = 4


def n_series(n_ofi: int) -> int:
    return S_OFI + n_ofi


def new_state(levels: int, capacity: int, n_ofi: int) -> tuple[np.ndarray, ...]:
    """Fresh streaming state: (ring, ring_ts, sums, istate, fstate, prev)."""
    ns = n_series(n_ofi)
    istate = np.zeros(8, dtype=np.int64)
    istate[I_LASTCHG] = np.iinfo(np.int64).min
    return (np.zeros((capacity, ns)), np.zeros(capacity, dtype=np.int64), np.zeros((N_WINDOWS, ns)),
            istate, np.full(2, np.nan), np.full((4, levels), np.nan))


@nb.njit(cache=True, inline="always")
def _snap(x: float) -> float:
    """A running sum of squared returns that should be 0 keeps ~1e-14 of rounding after large terms
    left the window; below 1e-9 bps^2 (a BitMEX tick is ~0.4 bps^2) it is 0."""
    return x if x > 1e-9 else 0.0


@nb.njit(cache=True)
def flow_features(t: np.int64, bp: np.ndarray, bs: np.ndarray, ap: np.ndarray, as_: np.ndarray, i: int,
                  cum: np.ndarray, pf: np.ndarray, pi: np.ndarray, ring: np.ndarray, ring_ts: np.ndarray,
                  sums: np.ndarray,
                  istate: np.ndarray, fstate: np.ndarray, prev: np.ndarray, out: np.ndarray, o: int) -> bool:
    """Update the state with snapshot ``i`` of the matrices (time ``t``) and write the flow family
    into ``out[o:]``. Returns True when every window is full (the row is not warm-up)."""
    C = ring.shape[0]
    mask = C - 1  # capacity is a power of two: index & mask instead of a ~25-cycle modulo
    L = bp.shape[1]
    ns = ring.shape[1]
    n = istate[I_COUNT]  # absolute index of this snapshot in the stream
    slot = n & mask
    b1 = bp[i, 0]
    a1 = ap[i, 0]
    m = 0.5 * (a1 + b1)
    qb1 = bs[i, 0]
    qa1 = as_[i, 0]
    micro = (a1 * qb1 + b1 * qa1) / (qb1 + qa1)
    fd = tail_int(pi, 1)
    db_f, da_f = at(cum[0], fd), at(cum[2], fd)
    so, nofi = seg(pi, SEG_OFI)
    kmax = 0
    for q in range(nofi):
        kmax = max(kmax, pi[so + q])
    # -- base series of this snapshot
    lm = np.log(m)  # the ring keeps ln(mid), ln(microprice): window returns are differences
    ring[slot, S_MID] = lm
    ring[slot, S_MICRO] = np.log(micro)
    ring[slot, S_SPREAD] = (a1 - b1) / m * 1e4
    ring[slot, S_IMB1] = (qb1 - qa1) / (qb1 + qa1)
    ring[slot, S_LDB] = np.log1p(db_f)
    ring[slot, S_LDA] = np.log1p(da_f)
    ring_ts[slot] = t
    if n == 0:
        r = 0.0
        ring[slot, S_R2] = 0.0
        ring[slot, S_CHG] = 0.0
        ring[slot, S_DT] = 0.0
        ring[slot, S_DEPLB] = 0.0
        ring[slot, S_DEPLA] = 0.0
        for q in range(nofi):
            ring[slot, S_OFI + q] = 0.0
    else:
        ps = (n - 1) & mask
        pm = ring[ps, S_MID]
        r = (lm - pm) * 1e4
        ring[slot, S_R2] = r * r
        ring[slot, S_CHG] = 1.0 if lm != pm else 0.0
        ring[slot, S_DT] = (t - ring_ts[ps]) / 1e6
        ring[slot, S_DEPLB] = 1.0 if (b1 == prev[0, 0] and qb1 < prev[1, 0]) else 0.0
        ring[slot, S_DEPLA] = 1.0 if (a1 == prev[2, 0] and qa1 < prev[3, 0]) else 0.0
        if lm != pm:
            istate[I_LASTCHG] = t
        e = 0.0
        lv = 0
        for j in range(min(kmax, L)):
            pb, pqb, pa, pqa = prev[0, j], prev[1, j], prev[2, j], prev[3, j]
            bj, qbj, aj, qaj = bp[i, j], bs[i, j], ap[i, j], as_[i, j]
            if bj == bj and pb == pb:
                e += (qbj if bj >= pb else 0.0) - (pqb if bj <= pb else 0.0)
            if aj == aj and pa == pa:
                e += (pqa if aj >= pa else 0.0) - (qaj if aj <= pa else 0.0)
            lv = j + 1
            for q in range(nofi):
                if pi[so + q] == lv:
                    ring[slot, S_OFI + q] = e
        for q in range(nofi):
            if pi[so + q] > L:
                ring[slot, S_OFI + q] = e
    for j in range(L):
        prev[0, j] = bp[i, j]
        prev[1, j] = bs[i, j]
        prev[2, j] = ap[i, j]
        prev[3, j] = as_[i, j]
    # -- windows: add this snapshot, drop the ones that left
    time_mode = pf[P_TIME_MODE] > 0.5
    for w in range(N_WINDOWS):
        for s in range(ns):
            sums[w, s] += ring[slot, s]
        p = istate[I_P0 + w]
        if w == 3:
            size = pf[P_RATE_NS]
            by_time = True
        else:
            size = pf[P_WS + w]
            by_time = time_mode
        while p <= n and ((by_time and ring_ts[p & mask] <= t - size) or ((not by_time) and p <= n - size)
                          or n - p + 1 > C - 1):
            for s in range(ns):
                sums[w, s] -= ring[p & mask, s]
            p += 1
        istate[I_P0 + w] = p
        if ((n + 1) & mask) == 0:  # refresh the running sums exactly
            for s in range(ns):
                acc = 0.0
                for jj in range(p, n + 1):
                    acc += ring[jj & mask, s]
                sums[w, s] = acc
    istate[I_COUNT] = n + 1
    p_s, p_m, p_l, p_r = istate[I_P0], istate[I_P0 + 1], istate[I_P0 + 2], istate[I_P0 + 3]
    ok_s, ok_m, ok_l, ok_r = p_s >= 1, p_m >= 1, p_l >= 1, p_r >= 1
    nan = np.nan
    # -- ewma volatility
    if n == 1:
        fstate[0] = r * r
    elif n > 1:
        a = pf[P_ALPHA]
        fstate[0] = (1.0 - a) * fstate[0] + a * r * r
    # -- outputs
    for q in range(nofi):
        k = pi[so + q]
        norm = 0.5 * (at(cum[0], k) + at(cum[2], k))
        out[o + q] = ring[slot, S_OFI + q] / norm if n >= 1 else nan
        out[o + nofi + 2 * q] = sums[0, S_OFI + q] / norm if ok_s else nan
        out[o + nofi + 2 * q + 1] = sums[1, S_OFI + q] / norm if ok_m else nan
    o += 3 * nofi
    out[o] = r if n >= 1 else nan
    out[o + 1] = (lm - ring[(p_s - 1) & mask, S_MID]) * 1e4 if ok_s else nan
    out[o + 2] = (lm - ring[(p_m - 1) & mask, S_MID]) * 1e4 if ok_m else nan
    out[o + 3] = (lm - ring[(p_l - 1) & mask, S_MID]) * 1e4 if ok_l else nan
    out[o + 4] = (ring[slot, S_MICRO] - ring[(p_s - 1) & mask, S_MICRO]) * 1e4 if ok_s else nan
    out[o + 5] = (ring[slot, S_MICRO] - ring[(p_m - 1) & mask, S_MICRO]) * 1e4 if ok_m else nan
    out[o + 6] = np.sqrt(_snap(sums[1, S_R2])) if ok_m else nan
    out[o + 7] = np.sqrt(_snap(sums[2, S_R2])) if ok_l else nan
    out[o + 8] = np.sqrt(fstate[0]) if n >= 1 else nan
    cnt_m = n - p_m + 1
    out[o + 9] = ring[slot, S_SPREAD] - sums[1, S_SPREAD] / cnt_m if ok_m else nan
    out[o + 10] = ring[slot, S_LDB] - ring[(p_s - 1) & mask, S_LDB] if ok_s else nan
    out[o + 11] = ring[slot, S_LDA] - ring[(p_s - 1) & mask, S_LDA] if ok_s else nan
    out[o + 12] = ring[slot, S_IMB1] - ring[(p_s - 1) & mask, S_IMB1] if ok_s else nan
    out[o + 13] = (n - p_r + 1) / (pf[P_RATE_NS] / 1e9) if ok_r else nan
    out[o + 14] = sums[2, S_CHG] if ok_l else nan
    out[o + 15] = sums[1, S_DT] / cnt_m if ok_m else nan
    lc = istate[I_LASTCHG]
    out[o + 16] = (t - lc) / 1e6 if lc != np.iinfo(np.int64).min else nan
    out[o + 17] = sums[1, S_DEPLB] / cnt_m if ok_m else nan
    out[o + 18] = sums[1, S_DEPLA] / cnt_m if ok_m else nan
    return ok_s and ok_m and ok_l and ok_r
