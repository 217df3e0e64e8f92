"""What backtest, sim and stress share: the typed spec of *what trades and how* (``TradingSpec``, from
``data.instruments``, ``execution=``, ``strategy=`` and ``risk=``), and the record / report pieces every
trading mode writes the same way (the fill and order tables, the money as people read it, the funding
notice). Each mode is then four steps over typed objects -- prepare -> run -> record -> report -- and only
its ``*_spec(cfg)`` function reads the Hydra config (as ``mode=train`` has ``train_spec``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.markup import escape

from l2exp.backtest.instruments import Instrument, instrument_for
from l2exp.backtest.params import ExecutionParams, from_config, strategy_from_config
from l2exp.backtest.strategies import Strategy
from l2exp.errors import UserError
from l2exp.risk.params import RiskParams
from l2exp.summary import console, money


@dataclass
class TradingSpec:
    """One symbol traded with one execution model, strategy and risk profile.

    Args:
        symbol: the traded symbol.
        instrument: its contract (``data.instruments``): type, multiplier, currencies, funding.
        execution / strategy / risk: the parameter objects the engine runs with (tick and lot resolved for
            the symbol; ``gates.min_depth`` converted from lots to contracts).
        risk_name: the profile's name (``risk.name``), for tags and titles.
    """

    symbol: str
    instrument: Instrument
    execution: ExecutionParams
    strategy: Strategy
    risk: RiskParams
    risk_name: str


def instrument_of(cfg: DictConfig, symbol: str, required: bool = True) -> Instrument:
    """The symbol's instrument from ``data.instruments``; an undeclared symbol is refused (``required``)."""
    raw = cfg.data.get("instruments")
    return instrument_for(OmegaConf.to_container(raw, resolve=True) if raw is not None else None,  # type: ignore[arg-type]
                          symbol, str(cfg.data.get("name", "")), required)


def trading_params(cfg: DictConfig, symbol: str, inst: Instrument | None = None) -> tuple[ExecutionParams, Strategy,
                                                                                          RiskParams]:
    """Execution, strategy and risk for ``symbol``; its tick and lot from its instrument when declared there
    (per symbol), else from ``execution.tick_size`` / ``lot_size`` (the data config's, a number or per symbol)."""
    ex_cfg = OmegaConf.to_container(cfg.execution, resolve=True)
    assert isinstance(ex_cfg, dict)
    tick = ex_cfg.pop("tick_size", None)
    if inst is not None and inst.tick is not None:
        tick = inst.tick
    if isinstance(tick, dict):
        if symbol not in tick:
            raise UserError(f"no tick size for {symbol}", where="execution.tick_size / data.tick_size")
        tick = tick[symbol]
    missing = [k for k in ("maker_fee_bps", "taker_fee_bps") if ex_cfg.get(k) is None]
    if missing:
        raise UserError(f"no venue fees for the backtest: {', '.join('execution.' + k for k in missing)} unset "
                        f"(data={cfg.data.name} has no fees: block)", where=f"conf/data/{cfg.data.name}.yaml",
                        fix="Add the venue's schedule to the data config, in bps of notional (negative = rebate):\n"
                            "  fees: {maker_bps: 1.0, taker_bps: 5.0}   # source: the venue's fee page\n"
                            "or pass them: execution.maker_fee_bps=1.0 execution.taker_fee_bps=5.0")
    lot = ex_cfg.pop("lot_size", 1.0)
    if inst is not None and inst.lot is not None:
        lot = inst.lot
    if isinstance(lot, dict):
        lot = lot.get(symbol, 1.0)
    ex = from_config(ExecutionParams, {"tick_size": float(tick), "lot_size": float(lot), **ex_cfg}, "execution")
    ex.validate()
    st = strategy_from_config(OmegaConf.to_container(cfg.strategy, resolve=True))  # type: ignore[arg-type]
    risk = OmegaConf.to_container(cfg.risk, resolve=True)
    rk = from_config(RiskParams, risk, "risk", extra_allowed=("name",))  # type: ignore[arg-type]
    rk.validate()
    # gates.min_depth is in lots, so one profile means the same on a 1-USD contract and on 0.001 BTC
    rk.gates.min_depth *= float(lot)
    return ex, st, rk


def trading_spec(cfg: DictConfig, symbol: str, required: bool = True) -> TradingSpec:
    """``TradingSpec`` of ``symbol`` from the config (``required``: refuse an undeclared instrument)."""
    inst = instrument_of(cfg, symbol, required)
    ex, st, rk = trading_params(cfg, symbol, inst)
    return TradingSpec(symbol, inst, ex, st, rk, str(cfg.risk.name))


def save_tables(directory: Path, fills: pd.DataFrame, orders: pd.DataFrame) -> None:
    """The fill and order tables of a run, as every trading mode stores them (``fills.parquet``, ``orders.parquet``)."""
    directory.mkdir(parents=True, exist_ok=True)
    fills.to_parquet(directory / "fills.parquet")
    orders.to_parquet(directory / "orders.parquet")


def money_rows(m: dict[str, float], inst: Instrument) -> list[tuple[str, str]]:
    """The money of a run as people read it: quote currency first (each amount at the fx of its own time),
    PnL also in bps of the traded notional, the settlement-currency figures the venue books beside them."""
    q, s = inst.quote, inst.settle
    both = q != s

    def row(label: str, quote: float, settle: float) -> tuple[str, str]:
        return (f"{label} ({q})", money(quote) + (f"   ({money(settle, str(s))})" if both else ""))

    funding = ("funding", "not modelled (a perpetual without a funding source)") if not np.isfinite(m["funding"]) \
        else row(f"funding, {int(m['funding_payments'])} payments", m["funding_quote"], m["funding"])
    return [row("pnl net", m["pnl_net_quote"], m["pnl_net"]),
            ("pnl net per traded notional", f"{m['pnl_bps_of_turnover']:.2f} bps of {money(m['turnover_quote'], q)}"),
            row("fees", m["fees_quote"], m["fees"]), funding,
            row("max drawdown", m["max_drawdown_quote"], m["max_drawdown"])]


def say_funding(inst: Instrument, live: bool = False) -> None:
    """A perpetual whose funding is not modelled is said once, loudly (never a silent zero)."""
    if inst.funding_status == "not modelled" or (live and inst.perpetual):
        console.print(f"[bold yellow]{escape(inst.symbol)} is a perpetual swap but its funding is not modelled"
                      f"{' in a live sim' if live else ''}: PnL leaves out the payments every funding time; declare "
                      f"data.instruments.{escape(inst.symbol)}.funding (rate_bps or the venue's history, "
                      "docs/backtest.md)[/]")
