"""Everything one run of the compiled loop reads and writes, built from typed config objects: the
parameter records, the plug-in kernels, the order / fill tables and the account and risk state.
Shared by the backtest (:func:`l2exp.backtest.run.backtest_book`) and the paper broker
(:class:`l2exp.sim.broker.PaperBroker`), so both run the same loop on the same state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from l2exp.backtest.instruments import Instrument
from l2exp.backtest.params import ExecutionParams
from l2exp.backtest.results import blocks_dict, counters_of, tables
from l2exp.backtest.strategies import Strategy
from l2exp.backtest.types import BLOCK_REASONS, DECISION, FILL, INTENT, ORDER, new_account, new_footprint
from l2exp.risk.params import RiskParams
from l2exp.risk.state import new_risk_state

MAX_INTENTS = 8


@dataclass
class LoopState:
    E: np.ndarray
    R: np.ndarray
    SP: np.ndarray
    QP: np.ndarray
    strategy: Any
    queue_model: Any
    order_type: Any
    orders: np.ndarray
    fills: np.ndarray
    blocks: np.ndarray
    A: np.ndarray
    RS: np.ndarray
    D: np.ndarray
    intents: np.ndarray
    FP: np.ndarray  # what our own orders took from the last snapshot's levels (types.new_footprint)

    @classmethod
    def create(cls, ex: ExecutionParams, st: Strategy, rk: RiskParams, inst: Instrument, has_trades: bool,
               max_orders: int, max_fills: int, levels: int, day_offset: float = 0.0) -> LoopState:
        st.validate("strategy")
        return cls(E=ex.record(inst.code, inst.multiplier, has_trades), R=rk.record(), SP=st.record(),
                   QP=ex.queue_model.record(), strategy=type(st).kernel, queue_model=type(ex.queue_model).kernel,
                   order_type=type(ex.order_type).kernel, orders=np.zeros(max_orders, ORDER),
                   fills=np.zeros(max_fills, FILL), blocks=np.zeros(len(BLOCK_REASONS), np.int64),
                   A=new_account(day_offset), RS=new_risk_state(), D=np.zeros(1, DECISION),
                   intents=np.zeros(MAX_INTENTS, INTENT), FP=new_footprint(levels))

    def params(self) -> tuple:
        """The arguments of ``engine.on_snapshot`` after the book, signal and fx, in order."""
        return (self.E, self.R, self.SP, self.QP, self.strategy, self.queue_model, self.order_type, self.orders,
                self.fills, self.blocks, self.A, self.RS, self.D, self.intents, self.FP)

    def counters(self) -> dict[str, float]:
        return counters_of(self.A, self.RS)

    def tables(self, t0: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        c = self.counters()
        return tables(self.fills, c["n_fills"], self.orders, c["n_orders"], t0)

    def blocks_dict(self) -> dict[str, int]:
        return blocks_dict(self.blocks)
