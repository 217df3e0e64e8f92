"""Queue models: how the quantity displayed ahead of a resting order moves when the level shrinks
by more than the prints at our price explain (cancellations). Prints at our price always move the
queue (``engine.on_trade``); the queue is always capped at the displayed size (``engine``). Each
model is one file: a dataclass with ``record()`` and a compiled ``kernel`` of ``types.QUEUE_SIG``,
chosen by ``_target_`` in ``conf/execution/queue_model/``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l2exp.backtest.types import QUEUE


@dataclass
class QueueModel:
    """Base: parameters every queue kernel receives (unused ones stay at their defaults)."""

    front_prob: float = 0.5
    power: float = 2.0

    kernel = None  # set by each model
    without_prints = ""  # what the model does where no trade prints cover the book (the run says it)

    def record(self) -> np.ndarray:
        r = np.zeros(1, QUEUE)
        r["front_prob"], r["power"] = self.front_prob, self.power
        return r

    def validate(self, where: str) -> None:
        from l2exp.errors import UserError

        if not 0.0 <= self.front_prob <= 1.0:
            raise UserError(f"{where}.front_prob must be in [0, 1], got {self.front_prob}", where=f"{where}.front_prob")
        if self.power <= 0:
            raise UserError(f"{where}.power must be > 0, got {self.power}", where=f"{where}.power")
