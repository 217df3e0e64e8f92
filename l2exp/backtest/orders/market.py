"""``market``: cross the spread and walk the visible levels (no price limit)."""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from l2exp.backtest.orders import OrderType
from l2exp.backtest.types import MARKET, ORDER_TYPE_SIG


@nb.njit(ORDER_TYPE_SIG, cache=True)
def market(side: float, bid: float, ask: float, tick: float) -> tuple[float, int]:  # noqa: ARG001
    return (np.inf if side > 0 else -np.inf), MARKET


@dataclass
class Market(OrderType):
    kernel = market
