"""Instruments: how a contract turns prices into money, per symbol, from the data config.

Every amount the engine books is in the instrument's **settlement currency**. With ``m`` the
multiplier and ``p`` a price, a position of ``q`` contracts is worth ``q * v(p)``, where

| contract | v(p) | PnL of a long q, entry p0, exit p1 | example |
|---|---|---|---|
| ``linear``  | ``m * p``  | ``q m (p1 - p0)``, quote | Binance spot / USD-M (m = 1 BTC, USDT) |
| ``inverse`` | ``-m / p`` | ``q m (1/p0 - 1/p1)``, base | BitMEX XBTUSD (m = 1 USD, XBT); COIN-M (100 USD) |
| ``quanto``  | ``m * p``  | ``q m (p1 - p0)``, a third | BitMEX ETHUSD (m = 1e-6 XBT per USD) |

A fill of ``q`` at ``p`` moves cash by ``-side q v(p)``; equity = cash + position x v(mid). Fees are
bps of the notional ``q |v(p)|`` -- in settlement currency, as venues charge them.

Risk limits are stated in one currency (``risk.currency``: ``quote`` -- the price currency,
USD for XBTUSD -- or ``settle``) and converted at every snapshot with ``fx`` = settlement -> quote:
1 for linear; the instrument's own mid for inverse (1 XBT = mid USD); for quanto the mid of the
instrument named by ``settle_fx: {symbol: ...}`` in the same data (ETHUSD settles in XBT: XBTUSD's
mid), or a fixed number. ``pnl_net_quote`` converts each equity change at the fx of its snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from l2exp.backtest.funding import Funding
from l2exp.backtest.types import INVERSE, LINEAR, QUANTO
from l2exp.errors import UserError

CONTRACTS = {"linear": LINEAR, "inverse": INVERSE, "quanto": QUANTO}


@dataclass
class Instrument:
    symbol: str
    contract: str = "linear"
    multiplier: float = 1.0
    quote: str = "quote"
    settle: str | None = None  # None: the quote currency (linear)
    settle_fx: Any = None  # quanto: {symbol: X} or a number (settle -> quote)
    tick: float | None = None  # price step of this symbol (else the data config's tick_size for it)
    lot: float | None = None   # quantity step of this symbol (else the data config's lot_size)
    perpetual: bool = False    # a perpetual swap: exchanges funding (backtest.funding)
    funding: Any = None        # its funding source ({rate_bps: ...} or {path: ...}); None: not modelled

    def __post_init__(self) -> None:
        if self.contract not in CONTRACTS:
            raise UserError(f"instrument {self.symbol}: contract must be one of {list(CONTRACTS)}, got "
                            f"{self.contract!r}", where=f"data.instruments.{self.symbol}.contract")
        if not self.multiplier or self.multiplier <= 0:
            raise UserError(f"instrument {self.symbol}: multiplier must be > 0, got {self.multiplier}",
                            where=f"data.instruments.{self.symbol}.multiplier")
        if self.settle is None:
            self.settle = self.quote
        if self.contract == "quanto" and self.settle_fx is None:
            raise UserError(f"instrument {self.symbol} is quanto: its settlement currency {self.settle} needs a "
                            f"rate to {self.quote}", where=f"data.instruments.{self.symbol}.settle_fx",
                            fix="settle_fx: {symbol: XBTUSD}   # the instrument whose mid converts it, or a number")

        if self.funding is not None and not isinstance(self.funding, Funding):
            from l2exp.backtest.params import from_config

            self.funding = from_config(Funding, dict(self.funding), f"data.instruments.{self.symbol}.funding")
        if self.funding is not None:
            self.funding.validate(f"data.instruments.{self.symbol}.funding")
            self.perpetual = True

    @property
    def funding_status(self) -> str:
        """What the run says about funding: ``modelled``, ``not modelled`` (a perpetual without a source) or
        ``none`` (not a perpetual)."""
        if self.funding is not None:
            return "modelled"
        return "not modelled" if self.perpetual else "none"

    @property
    def code(self) -> int:
        return CONTRACTS[self.contract]

    def value(self, price: np.ndarray | float) -> np.ndarray | float:
        """v(p): settlement-currency value of one contract at price p (see the module table)."""
        if self.contract == "inverse":
            return -self.multiplier / np.asarray(price, dtype=float)
        return self.multiplier * np.asarray(price, dtype=float)

    def fx_settle_to_quote(self, mid: np.ndarray, other_mid: np.ndarray | None = None) -> np.ndarray:
        """Per snapshot: how many quote units one settlement unit is worth."""
        if self.contract == "linear":
            return np.ones(len(mid))
        if self.contract == "inverse":
            return np.asarray(mid, dtype=float).copy()
        if isinstance(self.settle_fx, int | float):
            return np.full(len(mid), float(self.settle_fx))
        if other_mid is None:
            raise UserError(f"instrument {self.symbol}: settle_fx names {self.settle_fx} but no such book is in the "
                            "data", where=f"data.instruments.{self.symbol}.settle_fx")
        return other_mid


def instrument_for(instruments: dict[str, Any] | None, symbol: str, data_name: str = "",
                   required: bool = True) -> Instrument:
    """The symbol's instrument from ``data.instruments``. A symbol the data config does not declare is
    refused (``required``): a guessed "linear, multiplier 1, settles in quote" with another symbol's tick
    gives money that is silently wrong (ETHUSDT through the BTCUSDT config ran with BTC's 0.1 tick).
    ``required=False`` (a live feed whose venue the config does not describe): linear, multiplier 1 --
    the caller says so loudly."""
    from l2exp.backtest.params import from_config

    declared = instruments or {}
    if symbol not in declared and required:
        name = data_name or "<data>"
        raise UserError(f"no instrument declared for {symbol} in data={name}: l2exp does not guess a contract type, "
                        "multiplier, tick or lot", where=f"conf/data/{name}.yaml: instruments.{symbol}",
                        fix="Declare it in the data config (a copy of it, or data.instruments on the command line), "
                            "from the venue's contract specification, e.g.\n"
                            f"  instruments:\n    {symbol}: {{contract: linear, multiplier: 1.0, quote: USDT, "
                            "settle: USDT, tick: 0.01, lot: 0.001}   # inverse / quanto: see docs/backtest.md")
    spec = dict(declared.get(symbol) or {})
    return from_config(Instrument, {**spec, "symbol": symbol}, f"data.instruments.{symbol}")


def fx_series(inst: Instrument, ts: np.ndarray, mid: np.ndarray, read_other: Any = None) -> np.ndarray:
    """settle -> quote per snapshot; for a quanto priced off another symbol, that symbol's last mid at or
    before each snapshot (``read_other(symbol)`` returns its canonical frame)."""
    if inst.contract != "quanto" or isinstance(inst.settle_fx, int | float):
        return inst.fx_settle_to_quote(mid)
    sym = str(dict(inst.settle_fx).get("symbol"))
    other = read_other(sym) if read_other is not None else None
    if other is None or not len(other):
        return inst.fx_settle_to_quote(mid, None)
    o_ts = other["timestamp"].to_numpy(np.int64)
    o_mid = 0.5 * (other["bid_price_1"].to_numpy(float) + other["ask_price_1"].to_numpy(float))
    k = np.searchsorted(o_ts, ts, side="right") - 1
    fx = o_mid[np.clip(k, 0, len(o_mid) - 1)]  # before the other book's first row: its first mid
    return inst.fx_settle_to_quote(mid, fx)
