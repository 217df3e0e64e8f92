"""Strategies: what to hold or quote, decided every ``decision_ms`` from the signal and the book.

A strategy is one file: a dataclass (its config, chosen by ``_target_`` in ``conf/strategy/``) with a
compiled ``kernel`` of ``types.STRATEGY_SIG``::

    kernel(decision: DECISION record, params: STRATEGY record, intents: INTENT array) -> n

It writes up to ``len(intents)`` intents and returns how many (or ``NO_SIGNAL``). An intent is a
**target position** (``INTENT_TARGET``, signed contracts before volatility sizing; the engine turns it
into orders of ``execution.order_type`` for the difference) or a **quote** (``INTENT_QUOTE``: side,
size, limit price; the engine cancels the previous quotes and posts these). Risk sizing, limits and
gates (``l2exp.risk``) apply to every intent the same way, whatever the strategy -- a strategy
cannot bypass them. Adding one needs no edit to the engine (``tests/backtest/test_plugins.py`` plugs
in a strategy defined in the test).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l2exp.backtest.types import STRATEGY


@dataclass
class Strategy:
    """Base config: decision_ms between decisions, base_size (contracts at full signal, before risk
    sizing), threshold (|signal| below it -> flat, for signal strategies)."""

    decision_ms: float = 100.0
    base_size: float = 1.0
    threshold: float = 0.2

    kernel = None  # set by each strategy

    def record(self) -> np.ndarray:
        r = np.zeros(1, STRATEGY)
        r["decision_ns"], r["base_size"], r["threshold"] = self.decision_ms * 1e6, self.base_size, self.threshold
        return r

    def validate(self, where: str) -> None:
        from l2exp.errors import UserError

        if self.decision_ms < 0:
            raise UserError(f"{where}.decision_ms must be >= 0, got {self.decision_ms}", where=f"{where}.decision_ms")
        if self.base_size <= 0:
            raise UserError(f"{where}.base_size must be > 0, got {self.base_size}", where=f"{where}.base_size")
        if self.threshold < 0:
            raise UserError(f"{where}.threshold must be >= 0, got {self.threshold}", where=f"{where}.threshold")
