"""``quote``: market making at the touch -- every decision, cancel and repost a bid at the best bid
and an ask at the best ask, base_size each (the benchmark strategy; the signal is not used)."""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb

from l2exp.backtest.strategies import Strategy
from l2exp.backtest.types import INTENT_QUOTE, STRATEGY_SIG


@nb.njit(cache=True)
def post_touch(d, sp, intents) -> int:  # noqa: ANN001 - records
    """Both quotes: base_size at the best bid and at the best ask (2 intents)."""
    intents[0].kind = INTENT_QUOTE
    intents[0].side, intents[0].qty, intents[0].price = 1.0, sp.base_size, d.bid
    intents[1].kind = INTENT_QUOTE
    intents[1].side, intents[1].qty, intents[1].price = -1.0, sp.base_size, d.ask
    return 2


@nb.njit(STRATEGY_SIG, cache=True)
def quote_touch(d, sp, intents) -> int:  # noqa: ANN001 - records
    return post_touch(d, sp, intents)


@dataclass
class QuoteTouch(Strategy):
    threshold: float = 0.0
    kernel = quote_touch
