"""``trades``: cancellations never move us -- only prints at our price do (the conservative choice:
it assumes everyone who cancels was behind us)."""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb

from l2exp.backtest.queue import QueueModel
from l2exp.backtest.types import QUEUE_SIG


@nb.njit(QUEUE_SIG, cache=True)
def trades_only(queue: float, before: float, now: float, traded: float, qp) -> float:  # noqa: ANN001, ARG001
    return queue


@dataclass
class TradesOnly(QueueModel):
    without_prints = "the queue ahead never shrinks (fills only when the price trades through)"
    kernel = trades_only
