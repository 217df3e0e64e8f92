"""Execution, strategy and risk parameters -> one packed float vector for the Numba loop."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from l2exp.errors import UserError


@dataclass
class ExecutionParams:
    """``conf/execution``: how orders meet the book.

    latency_ms / cancel_latency_ms: order entry / cancel latency; latency_jitter: sigma of a lognormal
    factor on each latency (0 = constant); maker_fee_bps / taker_fee_bps: fees on notional (negative =
    rebate); tick_size / lot_size: price and quantity grids; queue_model: ``trades`` (the queue ahead
    shrinks only with trades at our price -- needs a trades file) or ``size_decrease`` (also with
    decreases of the displayed size at our price, each unit in front of us with probability
    ``queue_front_prob``); order_type: ``market`` (walk the book) or ``limit`` (join the touch).
    book_through_fills: fill a resting order when the *book* moves through its price with no print
    at it (the best opposite price reaches ours, or our side's best moves past ours): ``auto`` = only
    when no trades are loaded (then the book is the only evidence), ``true`` / ``false`` always / never.
    With trades loaded a cancelled level is not a fill: on BitMEX 20 of 116 maker fills were that.
    """

    latency_ms: float = 5.0
    cancel_latency_ms: float = 5.0
    latency_jitter: float = 0.0
    maker_fee_bps: float = 0.0
    taker_fee_bps: float = 5.0
    tick_size: float = 0.5
    lot_size: float = 1.0
    queue_model: str = "size_decrease"
    queue_front_prob: float = 0.5
    order_type: str = "market"
    seed: int = 7
    book_through_fills: str | bool = "auto"


@dataclass
class StrategyParams:
    """``conf/strategy``: signal -> target position (backtest, sim and stress alike).

    kind: ``signal`` (model probabilities: s = P(up) - P(down), or the predicted return for regression)
    or ``quote`` (post a passive bid and ask of ``base_size`` at the touch, cancel and repost every
    decision: the benchmark strategy). threshold: |s| below it -> flat target. decision_ms: time between
    decisions. base_size: position units at full signal before volatility scaling.
    """

    kind: str = "signal"
    threshold: float = 0.2
    decision_ms: float = 100.0
    base_size: float = 1.0


@dataclass
class RiskParams:
    """``conf/risk``: limits in position units and quote currency.

    target_vol_bps / vol_halflife_s / vol_floor_bps: size = base_size * min(target_vol / max(vol, floor), 2),
    vol = sqrt of the time-weighted EWMA of r^2 / dt, r = microprice log return (bps), dt in seconds:
    **bps per sqrt(second)**, the same whatever the snapshot rate (sim samples and backtest snapshots
    agree); half-life in seconds. currency: ``quote`` or ``settle`` -- the currency of max_notional,
    max_daily_loss and max_drawdown (converted exactly, see backtest.instruments). max_position
    (contracts / units), max_notional, max_daily_loss and max_drawdown (breach -> kill switch: cancel
    all, flatten -- again on every snapshot until flat -- and stop).
    max_spread_bps / min_depth: no new orders on a wide spread or a thin touch. max_orders_per_s: order
    rate limit. stale_ms: no decisions after a feed gap longer than this, or when the top of book has
    not changed for this long (a frozen feed). enabled: false turns every
    limit off (``risk=none``).
    """

    enabled: bool = True
    target_vol_bps: float = 1.0
    vol_halflife_s: float = 30.0
    vol_floor_bps: float = 0.05
    currency: str = "quote"
    max_position: float = 5.0
    max_notional: float = 1e9
    max_daily_loss: float = 1e9
    max_drawdown: float = 1e9
    max_spread_bps: float = 20.0
    min_depth: float = 0.0
    max_orders_per_s: float = 20.0
    stale_ms: float = 5000.0


P_NAMES = ("latency_ns", "cancel_latency_ns", "latency_jitter", "maker_bps", "taker_bps", "tick", "lot", "queue_model",
           "front_prob", "order_type", "strategy", "threshold", "decision_ns", "base_size", "risk_enabled",
           "target_vol_bps", "vol_tau_ns", "vol_floor_bps", "max_position", "max_notional", "max_daily_loss",
           "max_drawdown", "max_spread_bps", "min_depth", "max_orders_per_s", "stale_ns", "seed", "contract", "mult",
           "book_through", "limits_in_quote")
P = {name: i for i, name in enumerate(P_NAMES)}


def pack(ex: ExecutionParams, st: StrategyParams, rk: RiskParams, contract: int = 0, multiplier: float = 1.0,
         has_trades: bool = False) -> np.ndarray:
    """Everything the compiled loop reads, as one float vector (``P`` names the slots)."""
    if ex.queue_model not in ("trades", "size_decrease"):
        raise UserError(f"execution.queue_model must be trades or size_decrease, got {ex.queue_model!r}",
                        where="execution.queue_model")
    if ex.order_type not in ("market", "limit"):
        raise UserError(f"execution.order_type must be market or limit, got {ex.order_type!r}",
                        where="execution.order_type")
    if st.kind not in ("signal", "quote"):
        raise UserError(f"strategy.kind must be signal or quote, got {st.kind!r}", where="strategy.kind")
    if ex.lot_size <= 0 or ex.tick_size <= 0:
        raise UserError("execution.tick_size and lot_size must be > 0", where="execution")
    if rk.currency not in ("quote", "settle"):
        raise UserError(f"risk.limits.currency must be quote or settle, got {rk.currency!r}",
                        where="risk.limits.currency")
    if ex.book_through_fills not in ("auto", True, False):
        raise UserError(f"execution.book_through_fills must be auto, true or false, got {ex.book_through_fills!r}",
                        where="execution.book_through_fills")
    if rk.vol_halflife_s <= 0:
        raise UserError("risk.limits.vol_halflife_s must be > 0", where="risk.limits.vol_halflife_s")
    book_through = (not has_trades) if ex.book_through_fills == "auto" else bool(ex.book_through_fills)
    v = {
        "latency_ns": ex.latency_ms * 1e6, "cancel_latency_ns": ex.cancel_latency_ms * 1e6,
        "latency_jitter": ex.latency_jitter, "maker_bps": ex.maker_fee_bps, "taker_bps": ex.taker_fee_bps,
        "tick": ex.tick_size, "lot": ex.lot_size, "queue_model": 0.0 if ex.queue_model == "trades" else 1.0,
        "front_prob": ex.queue_front_prob, "order_type": 0.0 if ex.order_type == "market" else 1.0,
        "strategy": 0.0 if st.kind == "signal" else 1.0, "threshold": st.threshold, "decision_ns": st.decision_ms * 1e6,
        "base_size": st.base_size, "risk_enabled": 1.0 if rk.enabled else 0.0, "target_vol_bps": rk.target_vol_bps,
        "vol_tau_ns": rk.vol_halflife_s * 1e9 / np.log(2.0), "vol_floor_bps": rk.vol_floor_bps,
        "max_position": rk.max_position, "max_notional": rk.max_notional, "max_daily_loss": rk.max_daily_loss,
        "max_drawdown": rk.max_drawdown, "max_spread_bps": rk.max_spread_bps, "min_depth": rk.min_depth,
        "max_orders_per_s": rk.max_orders_per_s, "stale_ns": rk.stale_ms * 1e6, "seed": float(ex.seed),
        "contract": float(contract), "mult": float(multiplier), "book_through": 1.0 if book_through else 0.0,
        "limits_in_quote": 1.0 if rk.currency == "quote" else 0.0,
    }
    return np.asarray([float(v[n]) for n in P_NAMES])


def from_config(cls: type, values: dict[str, Any], where: str, extra_allowed: tuple[str, ...] = ()) -> Any:
    """Build a parameter dataclass from a config mapping, refusing what it would silently ignore or
    choke on: an unknown key is one message naming the closest valid key; a value of the wrong type
    (``risk.limits.max_position=abc``) names the key and the type wanted."""
    import difflib
    import typing

    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    out: dict[str, Any] = {}
    for key, val in values.items():
        if key in extra_allowed:
            continue
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            raise UserError(f"unknown key {key!r} in {where}", where=f"{where}.{key}",
                            fix=(f"Did you mean {where}.{close[0]}? " if close else "") + f"Keys: {', '.join(known)}")
        want = hints[key]
        if want is float or want is int:
            if isinstance(val, bool) or not isinstance(val, int | float):
                try:
                    val = float(val)
                except (TypeError, ValueError):
                    raise UserError(f"{where}.{key} must be a number, got {val!r}", where=f"{where}.{key}") from None
            val = want(val) if want is int else float(val)
        elif want is bool and not isinstance(val, bool):
            raise UserError(f"{where}.{key} must be true or false, got {val!r}", where=f"{where}.{key}")
        elif want is str and not isinstance(val, str):
            raise UserError(f"{where}.{key} must be text, got {val!r}", where=f"{where}.{key}")
        out[key] = val
    return cls(**out)
