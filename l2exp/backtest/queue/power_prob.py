"""``power_prob``: a cancellation's chance of being ahead of us grows with the quantity ahead relative
to the quantity behind (hftbacktest's ``PowerProbQueueModel``, after Rigtorp's queue-position
estimate). With front = queue ahead, back = displayed - front, f(x) = x^power:
p_back = f(back) / (f(back) + f(front)); of ``c`` cancelled units, (1 - p_back) c come off the front,
and whatever exceeds the back also comes off the front. power -> large: cancels come from whichever
side is larger; power = 1: proportional."""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb

from l2exp.backtest.queue import QueueModel
from l2exp.backtest.types import QUEUE_SIG


@nb.njit(QUEUE_SIG, cache=True)
def power_prob(queue: float, before: float, now: float, traded: float, qp) -> float:  # noqa: ANN001
    cancels = before - now - traded
    if cancels <= 0:
        return queue
    front = queue
    back = max(before - traded - front, 0.0)
    fb = back ** qp.power
    ff = front ** qp.power
    p_back = fb / (fb + ff) if fb + ff > 0 else 0.5
    est = front - (1.0 - p_back) * cancels + min(back - p_back * cancels, 0.0)
    return max(est, 0.0)


@dataclass
class PowerProb(QueueModel):
    without_prints = "the queue ahead shrinks only with decreases of the displayed size (power-law share)"
    kernel = power_prob
