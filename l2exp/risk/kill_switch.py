"""Kill switch: on a daily-loss or drawdown breach (in the limits' currency), the engine cancels
everything and flattens with immediate-or-cancel orders -- again on every later snapshot while a
position is left (``flatten_attempts``) -- and takes no other decision.

Daily loss = equity at the start of the UTC day - equity now; drawdown = peak equity - equity now
(settlement currency, x fx when the limits are in quote currency)."""

from __future__ import annotations

import numba as nb

DAY_NS = 86_400_000_000_000


@nb.njit(cache=True)
def breached(rs, eq: float, t: float, day_offset: float, fx: float, rp) -> bool:  # noqa: ANN001 - records
    """Update the day / peak marks with this snapshot's equity; True when the switch fires *now*."""
    if not rs.day_lo <= t < rs.day_hi:  # a new UTC day (a float floor division per snapshot was ~14 ns)
        d = float((t + day_offset) // DAY_NS)
        if d != rs.day:
            rs.day = d
            rs.day_eq = eq
        rs.day_lo = d * DAY_NS - day_offset
        rs.day_hi = rs.day_lo + DAY_NS
    rs.peak = max(rs.peak, eq)
    if rp.enabled == 0 or rs.killed == 1:
        return False
    conv = fx if rp.limits_in_quote == 1 else 1.0
    if (rs.day_eq - eq) * conv >= rp.max_daily_loss or (rs.peak - eq) * conv >= rp.max_drawdown:
        rs.killed = 1
        rs.kill_ts = t
        return True
    return False
