"""L2 volatility in time units, from the microprice.

r = log(micro_t / micro_prev) in bps; rate = r^2 / dt (bps^2 per second); an EWMA of the rate with
weight w = 1 - exp(-dt / tau) per step (tau = half-life / ln 2): a *time*-weighted average, so a
book sampled every 100 ms (sim) and every snapshot (backtest) give the same volatility.
vol = sqrt(EWMA) in **bps per sqrt(second)**. Repeated timestamps accumulate the return until time
moves. ``risk.sizing`` configures it.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def update_volatility(rs, micro: float, t: float, rp) -> None:  # noqa: ANN001 - records
    if rs.prev_micro != rs.prev_micro:
        rs.prev_micro = micro
        rs.vol_ts = t
    elif t > rs.vol_ts:
        dt = t - rs.vol_ts
        r = np.log(micro / rs.prev_micro) * 1e4
        rate = r * r / (dt * 1e-9)
        w = 1.0 - np.exp(-dt / rp.vol_tau_ns)
        rs.vol_var = rate if rs.vol_var < 0 else (1 - w) * rs.vol_var + w * rate
        rs.prev_micro = micro
        rs.vol_ts = t
