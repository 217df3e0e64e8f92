"""``conf/execution`` as a typed object, and the strict config -> object builder every engine part uses.

Plug-ins (queue model, order type, strategy) are chosen by ``_target_`` (a ``module.Class`` path) and
built here with the same key checks as everything else, so a typo'd key is one message naming the
closest valid key, not a ``TypeError`` traceback.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from l2exp.backtest.orders import OrderType
from l2exp.backtest.orders.market import Market
from l2exp.backtest.queue import QueueModel
from l2exp.backtest.queue.size_decrease import SizeDecrease
from l2exp.backtest.types import EXEC
from l2exp.errors import UserError

PLUGIN_BASES: tuple[type, ...] = (QueueModel, OrderType)


@dataclass
class ExecutionParams:
    """``conf/execution``: how orders meet the book.

    latency_ms / cancel_latency_ms: order entry / cancel latency; latency_jitter: sigma of a lognormal
    factor on each latency (0 = constant), drawn from a generator seeded with ``seed``;
    maker_fee_bps / taker_fee_bps: fees on notional (negative = rebate); tick_size / lot_size: price
    and quantity grids. queue_model (``conf/execution/queue_model/``): how cancellations move the
    queue ahead of a resting order (``trades``, ``size_decrease``, ``power_prob``); order_type
    (``conf/execution/order_type/``): how a target-position change is sent (``market`` walks the
    book, ``join_touch`` rests at the touch). book_through_fills: fill a resting order when the
    *book's opposite best* reaches its price with no print at it: ``auto`` = only where no print covers
    the time (no trades loaded, or outside the span the prints cover: then the book is the only
    evidence), ``true`` / ``false`` always / never. Where prints exist a cancelled level is not a fill:
    on BitMEX 20 of 116 maker fills were that.
    """

    latency_ms: float = 5.0
    cancel_latency_ms: float = 5.0
    latency_jitter: float = 0.0
    maker_fee_bps: float = 0.0
    taker_fee_bps: float = 5.0
    tick_size: float = 0.5
    lot_size: float = 1.0
    queue_model: QueueModel = field(default_factory=SizeDecrease)
    order_type: OrderType = field(default_factory=Market)
    seed: int = 7
    book_through_fills: str | bool = "auto"

    def validate(self, where: str = "execution") -> None:
        if self.lot_size <= 0 or self.tick_size <= 0:
            raise UserError(f"{where}.tick_size and lot_size must be > 0, got {self.tick_size}, {self.lot_size}",
                            where=where)
        for key in ("latency_ms", "cancel_latency_ms", "latency_jitter"):
            if getattr(self, key) < 0:
                raise UserError(f"{where}.{key} must be >= 0, got {getattr(self, key)}", where=f"{where}.{key}")
        if self.book_through_fills not in ("auto", True, False):
            raise UserError(f"{where}.book_through_fills must be auto, true or false, got "
                            f"{self.book_through_fills!r}", where=f"{where}.book_through_fills")
        self.queue_model.validate(f"{where}.queue_model")

    def record(self, contract: int = 0, multiplier: float = 1.0, has_trades: bool = False) -> np.ndarray:
        """The compiled code's copy (``types.EXEC``); book-through resolved against ``has_trades``."""
        self.validate()
        book_through = (not has_trades) if self.book_through_fills == "auto" else bool(self.book_through_fills)
        r = np.zeros(1, EXEC)
        r["latency_ns"], r["cancel_latency_ns"] = self.latency_ms * 1e6, self.cancel_latency_ms * 1e6
        r["latency_jitter"] = self.latency_jitter
        r["maker_bps"], r["taker_bps"] = self.maker_fee_bps, self.taker_fee_bps
        r["tick"], r["lot"], r["book_through"] = self.tick_size, self.lot_size, 1 if book_through else 0
        r["contract"], r["mult"] = contract, multiplier
        return r


def _closest(key: str, known: list[str], where: str) -> str:
    close = difflib.get_close_matches(key, known, n=1) or difflib.get_close_matches(
        key, [k.rsplit(".", 1)[-1] for k in known], n=1)
    if close and close[0] not in known:  # matched a nested key by its last part
        close = [k for k in known if k.rsplit(".", 1)[-1] == close[0]][:1]
    top = [k for k in known if "." not in k]
    return (f"Did you mean {where}.{close[0]}? " if close else "") + f"Keys: {', '.join(top)}"


def _nested_keys(cls: type, hints: dict[str, Any]) -> list[str]:
    """``section.key`` for the keys of nested sections (``max_pos`` at the top of risk -> limits.max_position)."""
    out = []
    for f in fields(cls):
        want = hints[f.name]
        if isinstance(want, type) and dataclasses.is_dataclass(want) and not issubclass(want, PLUGIN_BASES):
            out += [f"{f.name}.{g.name}" for g in fields(want)]
    return out


def _plugin(base: type, val: Any, where: str) -> Any:
    """A plug-in from ``{_target_: module.Class, **params}``, checked to be a ``base``."""
    if isinstance(val, base):
        return val
    if not isinstance(val, dict) or "_target_" not in val:
        raise UserError(f"{where} must be a mapping with _target_ (a {base.__name__} class), got {val!r}",
                        where=where, fix=f"Choose a file of conf/{where.replace('.', '/')}/, e.g. "
                                          f"{where.replace('.', '/')}=<name> on the command line")
    import importlib

    target = str(val["_target_"])
    try:
        module, _, name = target.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UserError(f"{where}._target_ {target!r} cannot be imported: {exc}", where=f"{where}._target_") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UserError(f"{where}._target_ {target!r} is not a {base.__name__}", where=f"{where}._target_")
    return from_config(cls, {k: v for k, v in val.items() if k != "_target_"}, where)


def from_config(cls: type, values: dict[str, Any], where: str, extra_allowed: tuple[str, ...] = ()) -> Any:
    """Build a parameter dataclass from a config mapping, refusing what it would silently ignore or
    choke on: an unknown key is one message naming the closest valid key; a value of the wrong type
    (``risk.limits.max_position=abc``) names the key and the type wanted. Nested dataclasses (risk
    sections) and plug-ins (``_target_``) are built the same way, recursively."""
    if not isinstance(values, dict):
        raise UserError(f"{where} must be a mapping of keys, got {values!r}", where=where)
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    out: dict[str, Any] = {}
    for key, val in values.items():
        if key in extra_allowed or key == "_target_":
            continue
        if key not in known:
            raise UserError(f"unknown key {key!r} in {where}", where=f"{where}.{key}",
                            fix=_closest(key, known + _nested_keys(cls, hints), where))
        want = hints[key]
        w = f"{where}.{key}"
        if isinstance(want, type) and dataclasses.is_dataclass(want) and not issubclass(want, PLUGIN_BASES):
            val = from_config(want, val, w)
        elif isinstance(want, type) and issubclass(want, PLUGIN_BASES):
            val = _plugin(want, val, w)
        elif want is float or want is int:
            if isinstance(val, bool) or not isinstance(val, int | float):
                try:
                    val = float(val)
                except (TypeError, ValueError):
                    raise UserError(f"{w} must be a number, got {val!r}", where=w) from None
            if want is int and float(val) != int(val):
                raise UserError(f"{w} must be a whole number, got {val!r}", where=w)
            val = int(val) if want is int else float(val)
        elif want is bool and not isinstance(val, bool):
            raise UserError(f"{w} must be true or false, got {val!r}", where=w)
        elif want is str and not isinstance(val, str):
            raise UserError(f"{w} must be text, got {val!r}", where=w)
        out[key] = val
    return cls(**out)


def strategy_from_config(values: dict[str, Any], where: str = "strategy") -> Any:
    """``conf/strategy``: ``{_target_: ..., **params}`` -> a checked Strategy."""
    from l2exp.backtest.strategies import Strategy

    s = _plugin(Strategy, values, where) if not isinstance(values, Strategy) else values
    s.validate(where)
    return s
