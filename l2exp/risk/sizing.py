"""Volatility-targeted sizing: a strategy's target position x min(target_vol / max(vol, floor),
max_scale) (vol from :mod:`l2exp.risk.volatility`, bps per sqrt(second)); before the first return
(no volatility yet) or with risk off, the target is left as the strategy gave it."""

from __future__ import annotations

import numba as nb


@nb.njit(cache=True)
def scale_target(target: float, rs, rp) -> float:  # noqa: ANN001 - records
    if rp.enabled == 0 or rs.vol_var < 0:
        return target
    return target * min(rp.target_vol_bps / max(rs.vol_var ** 0.5, rp.vol_floor_bps), rp.max_scale)
