"""The paper broker: the backtester's own fill and risk code (``on_snapshot``/``on_trade``) run one
live snapshot at a time. No code path here, or anywhere in l2exp, sends an order to an exchange."""

from __future__ import annotations

import numpy as np

from l2exp.backtest.engine import S_CASH, S_POS, new_state, on_snapshot
from l2exp.backtest.layout import C_FILLS, C_ORDERS, N_COUNTERS, N_FILL_COLS, N_ORDER_COLS
from l2exp.backtest.params import ExecutionParams, RiskParams, StrategyParams, pack
from l2exp.backtest.results import blocks_dict, tables


class PaperBroker:
    def __init__(self, ex: ExecutionParams, st: StrategyParams, rk: RiskParams, levels: int,
                 capacity: int = 200_000) -> None:
        self.p = pack(ex, st, rk)
        np.random.seed(int(ex.seed))
        self.levels = levels
        self.t0: int | None = None
        self.S = new_state()
        self.orders = np.zeros((capacity, N_ORDER_COLS))
        self.fills = np.zeros((capacity * min(levels, 10), N_FILL_COLS))
        self.blocks = np.zeros(16)
        self.counters = np.zeros(N_COUNTERS)
        self.mats = [np.empty((1, levels)) for _ in range(4)]
        self.equity = 0.0

    def on_book(self, ts: int, book: np.ndarray, signal: float) -> float:
        """One snapshot (``book`` (4, L): bid px, bid sz, ask px, ask sz) -> equity marked to mid."""
        if self.t0 is None:
            self.t0 = int(ts)
            self.S = new_state(float(self.t0 % 86_400_000_000_000))
        for k in range(4):
            self.mats[k][0] = book[k]
        self.equity = on_snapshot(float(ts - self.t0), 0, *self.mats, float(signal), self.p, self.orders, self.fills,
                                  self.blocks, self.counters, self.S)
        return self.equity

    @property
    def position(self) -> float:
        return float(self.S[S_POS])

    @property
    def cash(self) -> float:
        return float(self.S[S_CASH])

    def n_orders(self) -> int:
        return int(self.counters[C_ORDERS])

    def n_fills(self) -> int:
        return int(self.counters[C_FILLS])

    def tables(self):  # noqa: ANN201
        return tables(self.fills, self.n_fills(), self.orders, self.n_orders(), self.t0 or 0)

    def blocks_dict(self) -> dict[str, int]:
        return blocks_dict(self.blocks)
