"""``signal``: trade the model's signal s = P(up) - P(down) (or the predicted return for a regression
model): target = sign(s) x base_size when |s| >= threshold, else flat. No signal (NaN): no decision."""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from l2exp.backtest.strategies import Strategy
from l2exp.backtest.types import INTENT_TARGET, NO_SIGNAL, STRATEGY_SIG


@nb.njit(STRATEGY_SIG, cache=True)
def signal_target(d, sp, intents) -> int:  # noqa: ANN001 - records
    s = d.signal
    if s != s:
        return NO_SIGNAL
    direction = 0.0 if abs(s) < sp.threshold else np.sign(s)
    intents[0].kind = INTENT_TARGET
    intents[0].qty = direction * sp.base_size
    return 1


@dataclass
class SignalTarget(Strategy):
    kernel = signal_target
