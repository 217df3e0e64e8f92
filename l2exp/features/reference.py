"""An independent plain-pandas implementation of the feature library (event windows).

Written column-wise from the formulas in the family docstrings, without sharing code with the
Numba kernels: the tests use it as an oracle for the formulas, and ``bench/features.py`` as the
baseline the batch engine is measured against. One symbol, one session per call.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from l2exp.features.params import FeatureParams
from l2exp.schema import level_columns


def reference_features(book: pd.DataFrame, p: FeatureParams, levels: int, tick: float) -> pd.DataFrame:
    if p.window_unit != "events":
        raise ValueError("the reference implementation covers event windows")
    bp = book[level_columns("bid_price", levels)].to_numpy(float)
    bs = book[level_columns("bid_size", levels)].to_numpy(float)
    ap = book[level_columns("ask_price", levels)].to_numpy(float)
    as_ = book[level_columns("ask_size", levels)].to_numpy(float)
    ts = book["timestamp"].to_numpy(np.int64)
    okb = ~np.isnan(bp) & ~np.isnan(bs)
    oka = ~np.isnan(ap) & ~np.isnan(as_)
    cb = np.cumsum(np.where(okb, bs, 0.0), axis=1)
    cpb = np.cumsum(np.where(okb, bp * bs, 0.0), axis=1)
    ca = np.cumsum(np.where(oka, as_, 0.0), axis=1)
    cpa = np.cumsum(np.where(oka, ap * as_, 0.0), axis=1)

    def D(c: np.ndarray, k: int) -> np.ndarray:
        return c[:, min(k, levels) - 1]

    b1, a1, qb, qa = bp[:, 0], ap[:, 0], bs[:, 0], as_[:, 0]
    m = (a1 + b1) / 2
    micro = (a1 * qb + b1 * qa) / (qb + qa)
    f: dict[str, np.ndarray] = {}
    f["spread_bps"] = (a1 - b1) / m * 1e4
    f["spread_ticks"] = (a1 - b1) / tick
    f["microprice_gap_bps"] = (micro - m) / m * 1e4
    for k in p.wmid_depths:
        vb, va = D(cpb, k) / D(cb, k), D(cpa, k) / D(ca, k)
        w = (vb * D(ca, k) + va * D(cb, k)) / (D(cb, k) + D(ca, k))
        f[f"wmid_gap_bps_{k}"] = (w - m) / m * 1e4
    for k in p.vwap_depths:
        f[f"vwap_bid_dist_bps_{k}"] = (m - D(cpb, k) / D(cb, k)) / m * 1e4
        f[f"vwap_ask_dist_bps_{k}"] = (D(cpa, k) / D(ca, k) - m) / m * 1e4
    f["level_gap_bid_ticks"] = (b1 - bp[:, 1]) / tick
    f["level_gap_ask_ticks"] = (ap[:, 1] - a1) / tick
    for k in p.width_depths:
        f[f"book_width_bps_{k}"] = (ap[:, k - 1] - bp[:, k - 1]) / m * 1e4
    f["imbalance_1"] = (qb - qa) / (qb + qa)
    for k in p.imbalance_depths:
        f[f"imbalance_{k}"] = (D(cb, k) - D(ca, k)) / (D(cb, k) + D(ca, k))
    for k in p.depth_levels:
        f[f"log_depth_bid_{k}"] = np.log1p(D(cb, k))
        f[f"log_depth_ask_{k}"] = np.log1p(D(ca, k))
    K = min(p.slope_depth, levels)
    deep_b = pd.DataFrame(bp[:, :K]).ffill(axis=1).to_numpy()[:, -1]
    deep_a = pd.DataFrame(ap[:, :K]).ffill(axis=1).to_numpy()[:, -1]
    dist_b, dist_a = (b1 - deep_b) / m * 1e4, (deep_a - a1) / m * 1e4
    with np.errstate(divide="ignore", invalid="ignore"):
        f[f"slope_bid_{p.slope_depth}"] = np.where(dist_b > 0, np.log1p(D(cb, K) / dist_b), np.nan)
        f[f"slope_ask_{p.slope_depth}"] = np.where(dist_a > 0, np.log1p(D(ca, K) / dist_a), np.nan)
    w = 1.0 / np.arange(1, levels + 1)
    nb_, na_ = np.nan_to_num(bs), np.nan_to_num(as_)
    f["book_pressure"] = ((nb_ - na_) * w).sum(1) / ((nb_ + na_) * w).sum(1)
    for x in p.liquidity_bps:
        bq = np.where(okb & (bp >= (m * (1 - x * 1e-4))[:, None]), bs, 0.0).sum(1)
        aq = np.where(oka & (ap <= (m * (1 + x * 1e-4))[:, None]), as_, 0.0).sum(1)
        f[f"liq_bid_{x:g}bps"] = np.log1p(bq)
        f[f"liq_ask_{x:g}bps"] = np.log1p(aq)
        with np.errstate(invalid="ignore"):
            f[f"liq_imbalance_{x:g}bps"] = np.where(bq + aq > 0, (bq - aq) / (bq + aq), np.nan)
    f["l1_share_bid"] = qb / cb[:, -1]
    f["l1_share_ask"] = qa / ca[:, -1]

    # ---- flow, event windows
    ws, wm, wl = (int(p.windows[k]) for k in ("short", "medium", "long"))
    s, mm, lw = p.wlabel("short"), p.wlabel("medium"), p.wlabel("long")
    n = len(book)
    idx = np.arange(n)
    lm = pd.Series(np.log(m))
    lmi = pd.Series(np.log(micro))
    r = lm.diff().fillna(0.0) * 1e4
    pbp, pbs, pap, pas = (np.vstack([np.full((1, levels), np.nan), x[:-1]]) for x in (bp, bs, ap, as_))
    with np.errstate(invalid="ignore"):
        eb = np.where(~np.isnan(bp) & ~np.isnan(pbp), np.where(bp >= pbp, bs, 0) - np.where(bp <= pbp, pbs, 0), 0.0)
        ea = np.where(~np.isnan(ap) & ~np.isnan(pap), np.where(ap >= pap, pas, 0) - np.where(ap <= pap, as_, 0), 0.0)
    e = np.cumsum(eb + ea, axis=1)
    e[0] = 0.0
    ofi = {k: pd.Series(e[:, min(k, levels) - 1]) for k in p.ofi_levels}
    norm = {k: (D(cb, k) + D(ca, k)) / 2 for k in p.ofi_levels}
    for k in p.ofi_levels:
        f[f"ofi_{k}"] = np.where(idx >= 1, ofi[k] / norm[k], np.nan)
    for k in p.ofi_levels:
        f[f"ofi_{k}_{s}"] = np.where(idx >= ws, ofi[k].rolling(ws).sum() / norm[k], np.nan)
        f[f"ofi_{k}_{mm}"] = np.where(idx >= wm, ofi[k].rolling(wm).sum() / norm[k], np.nan)
    f["mid_ret_bps_1"] = np.where(idx >= 1, r, np.nan)
    f[f"mid_ret_bps_{s}"] = (lm - lm.shift(ws)) * 1e4
    f[f"mid_ret_bps_{mm}"] = (lm - lm.shift(wm)) * 1e4
    f[f"mid_ret_bps_{lw}"] = (lm - lm.shift(wl)) * 1e4
    f[f"micro_ret_bps_{s}"] = (lmi - lmi.shift(ws)) * 1e4
    f[f"micro_ret_bps_{mm}"] = (lmi - lmi.shift(wm)) * 1e4
    r2 = r**2
    f[f"rv_bps_{mm}"] = np.where(idx >= wm, np.sqrt(r2.rolling(wm).sum().clip(lower=0)), np.nan)
    f[f"rv_bps_{lw}"] = np.where(idx >= wl, np.sqrt(r2.rolling(wl).sum().clip(lower=0)), np.nan)
    alpha = 1.0 - 0.5 ** (1.0 / p.ewma_halflife)
    ew = r2.iloc[1:].ewm(alpha=alpha, adjust=False).mean().reindex(range(n))
    f["ewma_vol_bps"] = np.sqrt(ew)
    sp = pd.Series(f["spread_bps"])
    f[f"spread_dev_bps_{mm}"] = np.where(idx >= wm, sp - sp.rolling(wm).mean(), np.nan)
    ldb, lda = pd.Series(np.log1p(D(cb, p.flow_depth))), pd.Series(np.log1p(D(ca, p.flow_depth)))
    f[f"depth_chg_bid_{p.flow_depth}_{s}"] = ldb - ldb.shift(ws)
    f[f"depth_chg_ask_{p.flow_depth}_{s}"] = lda - lda.shift(ws)
    imb = pd.Series(f["imbalance_1"])
    f[f"imbalance_chg_{s}"] = imb - imb.shift(ws)
    R = int(p.rate_window_ms * 1e6)
    first_in = np.searchsorted(ts, ts - R, side="right")
    f["event_rate_hz"] = np.where(first_in >= 1, (idx - first_in + 1) / (R / 1e9), np.nan)
    chg = pd.Series(np.r_[0.0, (np.diff(lm.to_numpy()) != 0).astype(float)])
    f[f"mid_changes_{lw}"] = np.where(idx >= wl, chg.rolling(wl).sum(), np.nan)
    dt = pd.Series(np.r_[0.0, np.diff(ts) / 1e6])
    f[f"mean_dt_ms_{mm}"] = np.where(idx >= wm, dt.rolling(wm).mean(), np.nan)
    last = np.maximum.accumulate(np.where(chg.to_numpy() > 0, idx, -1))  # int ffill: ns stay exact
    f["time_since_mid_change_ms"] = np.where(last >= 0, (ts - ts[np.maximum(last, 0)]) / 1e6, np.nan)
    deplb = pd.Series(np.r_[0.0, ((b1[1:] == b1[:-1]) & (qb[1:] < qb[:-1])).astype(float)])
    depla = pd.Series(np.r_[0.0, ((a1[1:] == a1[:-1]) & (qa[1:] < qa[:-1])).astype(float)])
    f[f"bid_depletion_{mm}"] = np.where(idx >= wm, deplb.rolling(wm).mean(), np.nan)
    f[f"ask_depletion_{mm}"] = np.where(idx >= wm, depla.rolling(wm).mean(), np.nan)
    out = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in f.items()}, index=book.index)
    return out[p.names()]
