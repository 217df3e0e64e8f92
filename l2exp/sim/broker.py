"""The paper broker: the backtester's own compiled event handlers (``on_snapshot``/``on_trade``) run
one live event at a time, with the same parameters, instrument accounting and seeded jitter -- so a
replay through the broker and a backtest of the same rows give the same fills. No code path here, or
anywhere in l2exp, sends an order to an exchange."""

from __future__ import annotations

import numpy as np

from l2exp.backtest.engine import on_funding, on_snapshot, on_trade, seed_rng
from l2exp.backtest.instruments import Instrument
from l2exp.backtest.loop import LoopState
from l2exp.backtest.params import ExecutionParams
from l2exp.backtest.strategies import Strategy
from l2exp.errors import UserError
from l2exp.risk.params import RiskParams


class PaperBroker:
    def __init__(self, ex: ExecutionParams, st: Strategy, rk: RiskParams, levels: int,
                 instrument: Instrument | None = None, has_trades: bool = False, capacity: int = 200_000,
                 print_span: tuple[int, int] | None = None) -> None:
        """``print_span``: for a replay, the (first, last) print time: with ``book_through_fills=auto``
        the book alone fills a resting order only outside it, as ``backtest.run.book_through_mask`` does.
        A live feed cannot know its prints' span ahead: there the rule follows ``has_trades``."""
        self.inst = instrument or Instrument("")
        if self.inst.contract == "quanto" and not isinstance(self.inst.settle_fx, int | float):
            raise UserError(f"paper trading {self.inst.symbol} (quanto) needs a fixed settle_fx rate: the live loop "
                            f"has no {self.inst.settle_fx} book",
                            where=f"data.instruments.{self.inst.symbol}.settle_fx",
                            fix="settle_fx: 7900.0   # settlement -> quote rate used for the risk limits")
        self._make = lambda day_offset: LoopState.create(ex, st, rk, self.inst, has_trades, capacity,
                                                         capacity * min(levels, 10), levels, day_offset)
        self.loop = self._make(0.0)
        seed_rng(int(ex.seed))  # the compiled generator, as simulate() seeds it
        self.levels = levels
        self.print_span = print_span if ex.book_through_fills == "auto" else None
        self.t0: int | None = None
        # the engine's level-major book (engine.BOOK) with two slots: the new snapshot goes into the slot the
        # previous one is not in, so our events before the new snapshot still meet the book they would have met
        self.book = np.full((4, levels, 2), np.nan)
        self._book_ro = self.book.view()
        self._book_ro.flags.writeable = False
        self._slot = 1
        self.equity = 0.0
        self.pnl_quote = 0.0  # each equity change converted at its snapshot's fx, as the backtest does

    def decision_due(self, ts: int) -> bool:
        """Whether the next snapshot at ``ts`` is a decision (so the caller computes a signal only then)."""
        return self.t0 is None or float(ts - self.t0) >= self.loop.A[0]["next_decision_ts"]

    def on_book(self, ts: int, book: np.ndarray, signal: float, fx: float | None = None) -> float:
        """One snapshot (``book`` (4, L): bid px, bid sz, ask px, ask sz) -> equity (settlement currency)."""
        if self.t0 is None:
            self.t0 = int(ts)
            self.loop = self._make(float(self.t0 % 86_400_000_000_000))
        self._slot = 1 - self._slot
        self.book[:, :, self._slot] = book
        if fx is None:
            mid = 0.5 * (book[0, 0] + book[2, 0])
            fx = float(self.inst.settle_fx) if self.inst.contract == "quanto" else \
                float(self.inst.fx_settle_to_quote(np.array([mid]))[0])
        if self.print_span is not None:
            self.loop.E[0]["book_through"] = 0 if self.print_span[0] <= ts <= self.print_span[1] else 1
        eq = on_snapshot(float(ts - self.t0), self._slot, self._book_ro, float(signal), float(fx), *self.loop.params())
        if self.loop.A[0]["overflow"]:
            raise RuntimeError("paper broker order/fill tables are full: raise sim capacity or shorten the run")
        self.pnl_quote += (eq - self.equity) * fx
        self.equity = eq
        return eq

    def on_trade(self, ts: int, price: float, size: float, side: float) -> None:
        """One print (side +1 buyer-initiated): queue progress and fills of resting orders."""
        if self.t0 is None:
            return  # no order can rest before the first snapshot
        on_trade(float(ts - self.t0), float(price), float(size), float(side), self.loop.E, self.loop.orders,
                 self.loop.fills, self.loop.A, self._book_ro, self.loop.FP)

    def on_funding(self, ts: int, rate: float) -> float:
        """Funding at ``ts`` (rate a fraction; positive: longs pay), on the position held then -> the payment
        (settlement currency), booked as the backtest books it (``engine._on_funding``)."""
        if self.t0 is None:
            return 0.0  # nothing held before the first snapshot
        return float(on_funding(float(ts - self.t0), float(rate), self.loop.E, self.loop.orders, self.loop.fills,
                                self.loop.A, self._book_ro, self.loop.FP))

    @property
    def funding(self) -> float:
        """Funding received (+) or paid (-) so far, settlement currency."""
        return float(self.loop.A[0]["funding"])

    @property
    def position(self) -> float:
        return float(self.loop.A[0]["pos"])

    @property
    def cash(self) -> float:
        return float(self.loop.A[0]["cash"])

    def n_orders(self) -> int:
        return int(self.loop.A[0]["n_orders"])

    def n_fills(self) -> int:
        return int(self.loop.A[0]["n_fills"])

    def tables(self):  # noqa: ANN201
        return self.loop.tables(self.t0 or 0)

    def blocks_dict(self) -> dict[str, int]:
        return self.loop.blocks_dict()
