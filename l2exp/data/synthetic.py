"""A seeded synthetic limit order book: the demo's default source, needing no files.

Model (a simplified *queue-reactive* book on a tick grid, after Huang, Lehalle & Rosenbaum 2015):

* the book holds ``L`` contiguous price levels per side, queue sizes ``Q_b[k]``, ``Q_a[k]``;
* events arrive as a Poisson process; each event is one of
  - a limit order at level k of a side, rate ``lam_limit * decay**k``; inside the spread (when it is
    wider than one tick) at rate ``lam_inside`` -- so spreads are mostly one tick;
  - a cancellation at level k, rate ``mu_cancel * Q[k] / mean_size`` (bigger queues shed more);
  - a market order on a side, rate ``lam_market * r_t``, consuming the best queue (and beyond);
* ``r_t = exp(x_t)`` with ``x_t`` an AR(1) in log space: volatility clustering;
* when a best queue empties the mid moves one tick and a fresh level appears at the back with a size
  drawn from the depth profile.

Because the price moves exactly when a best queue is eaten, the smaller best queue is the one likely
to go: queue imbalance ``(Q_b - Q_a)/(Q_b + Q_a)`` really predicts the next mid move, as in real books.
One snapshot is emitted every ``events_per_snapshot`` events. Written with Numba (a hand-written event
loop, since no library generates order books); it makes ~1 M snapshots/s.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import numba as nb
import numpy as np
import pandas as pd
import pyarrow as pa

from l2exp.data.readers import RawChunk, Reader
from l2exp.schema import SIDE_FIELDS, level_columns


@nb.njit(cache=True)
def _simulate(n_snap: int, levels: int, book_levels: int, seed: int, start_tick: int, mean_size: float,
              events_per_snapshot: int, lam_limit: float, decay: float, lam_inside: float, mu_cancel: float,
              lam_market: float, vol_phi: float, vol_sigma: float, mean_dt_ns: float):
    np.random.seed(seed)
    L = book_levels
    qb = np.empty(L)
    qa = np.empty(L)
    for k in range(L):
        prof = mean_size * (0.6 + 0.15 * k)
        qb[k] = np.random.gamma(2.0, prof / 2.0)
        qa[k] = np.random.gamma(2.0, prof / 2.0)
    bid = start_tick  # best bid in ticks
    spread = 1
    x = 0.0
    t = 0.0
    ts = np.empty(n_snap, np.int64)
    bp = np.empty((n_snap, levels))
    bs = np.empty((n_snap, levels))
    ap = np.empty((n_snap, levels))
    as_ = np.empty((n_snap, levels))
    for s in range(n_snap):
        for _ in range(events_per_snapshot):
            x = vol_phi * x + vol_sigma * np.random.normal()
            r = np.exp(x)
            rate_lim = lam_limit * (1.0 - decay**L) / (1.0 - decay)
            rate_in = lam_inside if spread > 1 else 0.0
            tot_b = 0.0
            tot_a = 0.0
            for k in range(L):
                tot_b += qb[k]
                tot_a += qa[k]
            rate_can_b = mu_cancel * tot_b / mean_size
            rate_can_a = mu_cancel * tot_a / mean_size
            rate_mkt = lam_market * r
            total = 2 * rate_lim + 2 * rate_in + rate_can_b + rate_can_a + 2 * rate_mkt
            t += np.random.exponential(mean_dt_ns * (2 * lam_limit + 2 * lam_market) / total)
            u = np.random.random() * total
            size = np.random.gamma(1.5, mean_size / 1.5 * 0.3) + 1.0
            if u < 2 * rate_lim:  # limit order at level k on a side
                side = 0 if u < rate_lim else 1
                v = np.random.random() * (1.0 - decay**L)
                k = int(np.log(1.0 - v) / np.log(decay))
                k = min(max(k, 0), L - 1)
                if side == 0:
                    qb[k] += size
                else:
                    qa[k] += size
                continue
            u -= 2 * rate_lim
            if u < 2 * rate_in:  # improve the price inside a wide spread
                if u < rate_in:
                    for k in range(L - 1, 0, -1):
                        qb[k] = qb[k - 1]
                    qb[0] = size
                    bid += 1
                else:
                    for k in range(L - 1, 0, -1):
                        qa[k] = qa[k - 1]
                    qa[0] = size
                spread -= 1
                continue
            u -= 2 * rate_in
            if u < rate_can_b + rate_can_a:  # cancel, proportional to queue size
                q = qb if u < rate_can_b else qa
                tot = tot_b if u < rate_can_b else tot_a
                w = np.random.random() * tot
                k = 0
                acc = q[0]
                while acc < w and k < L - 1:
                    k += 1
                    acc += q[k]
                q[k] = max(q[k] - size, 1.0 if k > 0 else 0.0)
            else:  # market order: buy eats the ask, sell eats the bid
                u -= rate_can_b + rate_can_a
                buy = u < rate_mkt
                q = qa if buy else qb
                q[0] -= size * (1.0 + r)
            # a best queue emptied: shift that side by one tick, refill the back from the profile
            if qb[0] <= 0.0:
                for k in range(L - 1):
                    qb[k] = qb[k + 1]
                qb[L - 1] = np.random.gamma(2.0, mean_size * (0.6 + 0.15 * L) / 2.0)
                bid -= 1
                spread += 1
            if qa[0] <= 0.0:
                for k in range(L - 1):
                    qa[k] = qa[k + 1]
                qa[L - 1] = np.random.gamma(2.0, mean_size * (0.6 + 0.15 * L) / 2.0)
                spread += 1
            if spread > 4:  # keep spreads realistic: the far side follows
                for k in range(L - 1, 0, -1):
                    qa[k] = qa[k - 1]
                qa[0] = np.random.gamma(2.0, mean_size / 2.0)
                spread -= 1
        ts[s] = np.int64(t)
        for k in range(levels):
            bp[s, k] = bid - k
            bs[s, k] = np.ceil(qb[k])
            ap[s, k] = bid + spread + k
            as_[s, k] = np.ceil(qa[k])
    return ts, bp, bs, ap, as_


class SyntheticReader(Reader):
    """Reader of the synthetic book; the "path" is ``synthetic://`` plus its parameters' digest.

    Emits canonical column names, so the mapping is the identity and the same ingest/validation
    path as real files is exercised.
    """

    def __init__(self, levels: int, n_snapshots: int = 200_000, seed: int = 7, tick_size: float = 0.5,
                 start_price: float = 20_000.0, mean_size: float = 500.0, events_per_snapshot: int = 4,
                 start: str = "2024-01-02T00:00:00Z", mean_dt_ms: float = 25.0, symbol: str = "SYNTH-USD",
                 exchange: str = "synthetic", lam_limit: float = 1.0, decay: float = 0.75, lam_inside: float = 4.0,
                 mu_cancel: float = 0.2, lam_market: float = 0.35, vol_phi: float = 0.999,
                 vol_sigma: float = 0.03, **kw: Any) -> None:
        super().__init__(levels, **kw)
        self.params = {k: v for k, v in locals().items() if k not in ("self", "kw", "__class__")}

    def digest(self) -> str:
        return hashlib.blake2b(json.dumps(self.params, sort_keys=True, default=str).encode(),
                               digest_size=16).hexdigest()

    def iter_chunks(self, path: str, chunk_rows: int, numeric: set[str]) -> Iterator[RawChunk]:
        p = self.params
        levels = int(p["levels"])
        ts, bp, bs, ap, as_ = _simulate(
            int(p["n_snapshots"]), levels, max(levels, 10), int(p["seed"]),
            int(round(p["start_price"] / p["tick_size"])), float(p["mean_size"]), int(p["events_per_snapshot"]),
            float(p["lam_limit"]), float(p["decay"]), float(p["lam_inside"]), float(p["mu_cancel"]),
            float(p["lam_market"]), float(p["vol_phi"]), float(p["vol_sigma"]), float(p["mean_dt_ms"]) * 1e6)
        ts = ts + pd.Timestamp(p["start"]).value
        tick = float(p["tick_size"])
        mats = {"bid_price": bp * tick, "bid_size": bs, "ask_price": ap * tick, "ask_size": as_}
        n = len(ts)
        for start in range(0, n, chunk_rows):
            sl = slice(start, min(n, start + chunk_rows))
            cols: dict[str, Any] = {"timestamp": pa.array(ts[sl]),
                                    "symbol": pa.array(np.full(sl.stop - sl.start, p["symbol"], dtype=object)),
                                    "exchange": pa.array(np.full(sl.stop - sl.start, p["exchange"], dtype=object))}
            for field in SIDE_FIELDS:
                for j, name in enumerate(level_columns(field, levels)):
                    cols[name] = pa.array(mats[field][sl, j])
            yield RawChunk(pa.table(cols), path, np.arange(sl.start, sl.stop) + 1)
