"""The paper broker: the backtester's own compiled event handlers (``on_snapshot``/``on_trade``) run
one live event at a time, with the same parameters, instrument accounting and seeded jitter -- so a
replay through the broker and a backtest of the same rows give the same fills. No code path here, or
anywhere in l2exp, sends an order to an exchange."""

from __future__ import annotations

import numpy as np

from l2exp.backtest.engine import S_CASH, S_NEXT_DEC, S_POS, new_state, on_snapshot, on_trade, seed_rng
from l2exp.backtest.instruments import Instrument
from l2exp.backtest.layout import C_FILLS, C_ORDERS, N_COUNTERS, N_FILL_COLS, N_ORDER_COLS
from l2exp.backtest.params import ExecutionParams, RiskParams, StrategyParams, pack
from l2exp.backtest.results import blocks_dict, tables
from l2exp.errors import UserError


class PaperBroker:
    def __init__(self, ex: ExecutionParams, st: StrategyParams, rk: RiskParams, levels: int,
                 instrument: Instrument | None = None, has_trades: bool = False, capacity: int = 200_000) -> None:
        self.inst = instrument or Instrument("")
        if self.inst.contract == "quanto" and not isinstance(self.inst.settle_fx, int | float):
            raise UserError(f"paper trading {self.inst.symbol} (quanto) needs a fixed settle_fx rate: the live loop "
                            f"has no {self.inst.settle_fx} book",
                            where=f"data.instruments.{self.inst.symbol}.settle_fx",
                            fix="settle_fx: 7900.0   # settlement -> quote rate used for the risk limits")
        self.p = pack(ex, st, rk, self.inst.code, self.inst.multiplier, has_trades)
        seed_rng(int(ex.seed))  # the compiled generator, as simulate() seeds it
        self.levels = levels
        self.t0: int | None = None
        self.S = new_state()
        self.orders = np.zeros((capacity, N_ORDER_COLS))
        self.fills = np.zeros((capacity * min(levels, 10), N_FILL_COLS))
        self.blocks = np.zeros(16)
        self.counters = np.zeros(N_COUNTERS)
        self.mats = [np.empty((1, levels)) for _ in range(4)]
        self.equity = 0.0
        self.pnl_quote = 0.0  # each equity change converted at its snapshot's fx, as the backtest does

    def decision_due(self, ts: int) -> bool:
        """Whether the next snapshot at ``ts`` is a decision (so the caller computes a signal only then)."""
        return self.t0 is None or float(ts - self.t0) >= self.S[S_NEXT_DEC]

    def on_book(self, ts: int, book: np.ndarray, signal: float, fx: float | None = None) -> float:
        """One snapshot (``book`` (4, L): bid px, bid sz, ask px, ask sz) -> equity (settlement currency)."""
        if self.t0 is None:
            self.t0 = int(ts)
            self.S = new_state(float(self.t0 % 86_400_000_000_000))
        for k in range(4):
            self.mats[k][0] = book[k]
        if fx is None:
            mid = 0.5 * (book[0, 0] + book[2, 0])
            fx = float(self.inst.settle_fx) if self.inst.contract == "quanto" else \
                float(self.inst.fx_settle_to_quote(np.array([mid]))[0])
        eq = on_snapshot(float(ts - self.t0), 0, *self.mats, float(signal), float(fx), self.p, self.orders,
                         self.fills, self.blocks, self.counters, self.S)
        self.pnl_quote += (eq - self.equity) * fx
        self.equity = eq
        return eq

    def on_trade(self, ts: int, price: float, size: float, side: float) -> None:
        """One print (side +1 buyer-initiated): queue progress and fills of resting orders."""
        if self.t0 is None:
            return  # no order can rest before the first snapshot
        on_trade(float(ts - self.t0), float(price), float(size), float(side), self.p, self.orders, self.fills,
                 self.counters, self.S)

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
