"""``join_touch``: a passive limit order at our side's best price (buy at the bid, sell at the ask):
maker fees, queue position, no spread paid -- and no fill if the price runs away."""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb

from l2exp.backtest.orders import OrderType
from l2exp.backtest.types import LIMIT, ORDER_TYPE_SIG


@nb.njit(ORDER_TYPE_SIG, cache=True)
def join_touch(side: float, bid: float, ask: float, tick: float) -> tuple[float, int]:  # noqa: ARG001
    return (bid if side > 0 else ask), LIMIT


@dataclass
class JoinTouch(OrderType):
    kernel = join_touch
