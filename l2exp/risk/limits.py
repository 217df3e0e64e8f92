"""Position and notional limits (each clamp counted as a block of its reason): on a target position
(:func:`clamp_target`), and on each new order in the worst case (:func:`room`).

Notional = |contracts| x |v(mid)| (settlement currency, see backtest.instruments) x fx when the
limits are in quote currency. Targets and orders stay on the lot grid (rounded towards zero)."""

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
def room(qty: float, exposure: float, lot: float, unit_value: float, fx: float, rp, blocks: np.ndarray) -> float:  # noqa: ANN001
    """A new order of ``qty`` cut so that ``exposure`` (the worst case on its side: position signed by
    the order's side + every live order of that side, see ``engine._exposure``) + qty stays within
    max_position contracts and max_notional; 0 when nothing fits."""
    if rp.enabled == 0:
        return qty
    q = qty
    cap = rp.max_position - exposure
    if q > cap + 1e-9:
        q = max(np.floor(cap / lot + 1e-9) * lot, 0.0)
        blocks[B_MAXPOS] += 1
    conv = fx if rp.limits_in_quote == 1 else 1.0
    cap = rp.max_notional / (unit_value * conv) - exposure
    if q > cap + 1e-9:
        q = max(np.floor(cap / lot + 1e-9) * lot, 0.0)
        blocks[B_MAXNOTIONAL] += 1
    return q
