"""``size_decrease``: the part of a level's decrease that the prints since the last snapshot do not
explain is cancellations, each unit ahead of us with probability ``front_prob`` (0.5: no view of
where cancellations come from). A print is never counted twice: once as a trade, once as the size
drop it causes."""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb

from l2exp.backtest.queue import QueueModel
from l2exp.backtest.types import QUEUE_SIG


@nb.njit(QUEUE_SIG, cache=True)
def size_decrease(queue: float, before: float, now: float, traded: float, qp) -> float:  # noqa: ANN001
    cancels = before - now - traded
    if cancels > 0:
        return max(queue - cancels * qp.front_prob, 0.0)
    return queue


@dataclass
class SizeDecrease(QueueModel):
    without_prints = "the queue ahead shrinks only with decreases of the displayed size"
    kernel = size_decrease
