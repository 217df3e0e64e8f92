"""``conf/risk``: the risk manager's configuration, one section per module of ``l2exp.risk``.

Position units are the instrument's (contracts for BitMEX, coins for crypto spot). Money limits
(``limits.max_notional``, ``kill_switch.max_daily_loss`` / ``max_drawdown``) are in ``currency``:
``quote`` (the price currency, USD for XBTUSD) or ``settle`` (XBT for XBTUSD), converted exactly at
every snapshot (backtest.instruments). ``enabled: false`` turns every limit off (``risk=none``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from l2exp.errors import UserError
from l2exp.risk.state import RISK


@dataclass
class Sizing:
    """:mod:`l2exp.risk.sizing`: size = target x min(target_vol_bps / max(vol, vol_floor_bps), max_scale);
    vol in bps per sqrt(second) (:mod:`l2exp.risk.volatility`), EWMA half-life ``vol_halflife_s``.

    ``unit_notional`` > 0: sizes are money -- one unit of a strategy's size (``strategy.base_size: 1``) is
    worth ``unit_notional`` in ``currency`` at each decision's mid, converted to contracts through the
    instrument (``n / (|v(mid)| x fx)``: 1,000 USD = 1,000 XBTUSD contracts, ~0.015 BTC of BTCUSDT at 65,000,
    10 BTCUSD_PERP of 100 USD), then rounded down to lots (the rounding counted). 0: sizes are contracts.
    Applies with every profile, ``risk=none`` too: it says what a size means, it limits nothing."""

    unit_notional: float = 0.0
    target_vol_bps: float = 1.0
    vol_halflife_s: float = 30.0
    vol_floor_bps: float = 0.05
    max_scale: float = 2.0


@dataclass
class Limits:
    """:mod:`l2exp.risk.limits`: max_position (contracts / units), max_notional (``currency``)."""

    max_position: float = 5.0
    max_notional: float = 1e9


@dataclass
class KillSwitch:
    """:mod:`l2exp.risk.kill_switch`: a loss from the UTC day's start or a drawdown from the peak at or
    beyond these (``currency``) -> cancel all, flatten until flat, no more decisions."""

    max_daily_loss: float = 1e9
    max_drawdown: float = 1e9


@dataclass
class Gates:
    """:mod:`l2exp.risk.gates`: no new orders on a spread wider than max_spread_bps, less than
    min_depth at either touch, max_orders_per_s reached, or a feed gap / frozen top of book longer
    than stale_ms. In config ``min_depth`` is in lots (``execution.lot_size``: 1 contract on BitMEX,
    0.001 BTC on Binance BTCUSDT); the modes convert it to instrument units before the engine runs."""

    max_spread_bps: float = 20.0
    min_depth: float = 0.0
    max_orders_per_s: float = 20.0
    stale_ms: float = 5000.0


@dataclass
class RiskParams:
    enabled: bool = True
    currency: str = "quote"
    sizing: Sizing = field(default_factory=Sizing)
    limits: Limits = field(default_factory=Limits)
    kill_switch: KillSwitch = field(default_factory=KillSwitch)
    gates: Gates = field(default_factory=Gates)

    @classmethod
    def of(cls, enabled: bool = True, currency: str = "quote", **limits: float) -> RiskParams:
        """Built from flat keys, each put in the section that owns it:
        ``RiskParams.of(max_position=3, max_daily_loss=20)`` (for code and notebooks; configs nest)."""
        built: dict[str, dict[str, float]] = {name: {} for name in SECTIONS}
        for key, val in limits.items():
            owner = [s for s, t in SECTION_TYPES.items() if key in {f.name for f in fields(t)}]
            if not owner:
                raise TypeError(f"unknown risk key {key!r}")
            built[owner[0]][key] = val
        return cls(enabled=enabled, currency=currency,
                   **{s: SECTION_TYPES[s](**kw) for s, kw in built.items()})  # type: ignore[arg-type]

    def validate(self, where: str = "risk") -> None:
        if self.currency not in ("quote", "settle"):
            raise UserError(f"{where}.currency must be quote or settle, got {self.currency!r}",
                            where=f"{where}.currency")
        checks = [("sizing.unit_notional", self.sizing.unit_notional, 0.0, True),
                  ("sizing.vol_halflife_s", self.sizing.vol_halflife_s, 0.0, False),
                  ("sizing.vol_floor_bps", self.sizing.vol_floor_bps, 0.0, False),
                  ("sizing.max_scale", self.sizing.max_scale, 0.0, False),
                  ("sizing.target_vol_bps", self.sizing.target_vol_bps, 0.0, False),
                  ("limits.max_position", self.limits.max_position, 0.0, True),
                  ("limits.max_notional", self.limits.max_notional, 0.0, True),
                  ("kill_switch.max_daily_loss", self.kill_switch.max_daily_loss, 0.0, True),
                  ("kill_switch.max_drawdown", self.kill_switch.max_drawdown, 0.0, True),
                  ("gates.max_spread_bps", self.gates.max_spread_bps, 0.0, True),
                  ("gates.min_depth", self.gates.min_depth, 0.0, True),
                  ("gates.max_orders_per_s", self.gates.max_orders_per_s, 0.0, False),
                  ("gates.stale_ms", self.gates.stale_ms, 0.0, False)]
        for key, val, low, inclusive in checks:
            if val < low or (val == low and not inclusive):
                raise UserError(f"{where}.{key} must be {'>=' if inclusive else '>'} {low:g}, got {val}",
                                where=f"{where}.{key}")

    def record(self) -> np.ndarray:
        """The compiled code's copy (``l2exp.risk.state.RISK``)."""
        self.validate()
        r = np.zeros(1, RISK)
        s, lim, ks, g = self.sizing, self.limits, self.kill_switch, self.gates
        r["enabled"] = 1 if self.enabled else 0
        r["limits_in_quote"] = 1 if self.currency == "quote" else 0
        r["unit_notional"] = s.unit_notional
        r["target_vol_bps"], r["vol_tau_ns"] = s.target_vol_bps, s.vol_halflife_s * 1e9 / np.log(2.0)
        r["vol_floor_bps"], r["max_scale"] = s.vol_floor_bps, s.max_scale
        r["max_position"], r["max_notional"] = lim.max_position, lim.max_notional
        r["max_daily_loss"], r["max_drawdown"] = ks.max_daily_loss, ks.max_drawdown
        r["max_spread_bps"], r["min_depth"] = g.max_spread_bps, g.min_depth
        r["max_orders_per_s"], r["stale_ns"] = g.max_orders_per_s, g.stale_ms * 1e6
        return r


SECTION_TYPES: dict[str, type] = {"sizing": Sizing, "limits": Limits, "kill_switch": KillSwitch, "gates": Gates}
SECTIONS = tuple(SECTION_TYPES)
