"""Position and notional limits on a target position (each clamp counted as a block of its reason).

Notional = |contracts| x |v(mid)| (settlement currency, see backtest.instruments) x fx when the
limits are in quote currency. Targets stay on the lot grid (rounded towards zero)."""

from __future__ import annotations

import numba as nb
import numpy as np

from l2exp.backtest.types import B_MAXNOTIONAL, B_MAXPOS


@nb.njit(cache=True)
def clamp_target(target: float, lot: float, unit_value: float, fx: float, rp, blocks: np.ndarray) -> float:  # noqa: ANN001
    if rp.enabled == 0:
        return target
    if abs(target) > rp.max_position:
        target = np.sign(target) * np.floor(rp.max_position / lot + 1e-9) * lot
        blocks[B_MAXPOS] += 1
    conv = fx if rp.limits_in_quote == 1 else 1.0
    if abs(target) * unit_value * conv > rp.max_notional:
        target = np.sign(target) * np.floor(rp.max_notional / (lot * unit_value * conv) + 1e-9) * lot
        blocks[B_MAXNOTIONAL] += 1
    return target


@nb.njit(cache=True)
def quote_allowed(pos: float, side: float, qty: float, rp) -> bool:  # noqa: ANN001
    """Whether a quote, if filled, keeps the position within max_position."""
    return rp.enabled == 0 or abs(pos + side * qty) <= rp.max_position + 1e-9
