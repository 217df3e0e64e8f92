"""Feature parameters -> the packed arrays the Numba kernels read, and the feature names in the
exact order the kernels write them.

Kept in one place so the order cannot drift: every family function in ``price.py``, ``depth.py``
and ``flow.py`` loops over the same lists in the same order as :meth:`FeatureParams.names`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from l2exp.errors import UserError

WINDOWS = ("short", "medium", "long")


@dataclass
class FeatureParams:
    """Parameters of the whole library (``conf/features/*.yaml``, key ``params``).

    Attributes:
        tick_size: price tick for features in ticks: one number, or ``{symbol: tick}`` for sources
            mixing instruments (BitMEX XBTUSD 0.5, ETHUSD 0.05).
        reset_gap_ms: a gap longer than this between two snapshots of a symbol starts a new session:
            the flow state restarts (and warms up again) rather than treat the gap as one move.
        reset_daily: the flow state also restarts at 00:00 UTC. Each (symbol, day) partition's
            features then depend on that day alone, so ``mode=features`` computes days as parallel
            tasks (``compute=local|ray``) and gets exactly the serial table; the price is one warm-up
            (the long window) per day on a market that trades through midnight.
        window_unit: ``events`` (snapshots) or ``ms``: the unit of ``windows``.
        windows: sizes of the short/medium/long windows of the flow family.
        rate_window_ms: time window of the event-rate feature (always in time).
        ewma_halflife: half-life in events of the EWMA volatility.
        imbalance_depths / wmid_depths / vwap_depths / width_depths / depth_levels: book depths k.
        liquidity_bps: distances from mid for the liquidity-within-x-bps features.
        ofi_levels: cumulative depths of order-flow imbalance.
        slope_depth: depth of the depth-slope features; flow_depth: depth of the depth-change features.
        capacity: ring-buffer size (snapshots) of the streaming state; a time window holding more
            snapshots than this is truncated to the newest ``capacity - 1``.
    """

    tick_size: float | dict[str, float] = 0.5
    reset_gap_ms: float = 300_000.0
    reset_daily: bool = True
    window_unit: str = "events"
    windows: dict[str, float] = field(default_factory=lambda: {"short": 10, "medium": 50, "long": 200})
    rate_window_ms: float = 1000.0
    ewma_halflife: float = 100.0
    imbalance_depths: list[int] = field(default_factory=lambda: [2, 3, 5, 10])
    wmid_depths: list[int] = field(default_factory=lambda: [3, 5, 10])
    vwap_depths: list[int] = field(default_factory=lambda: [5, 10])
    width_depths: list[int] = field(default_factory=lambda: [5, 10])
    depth_levels: list[int] = field(default_factory=lambda: [1, 5, 10])
    liquidity_bps: list[float] = field(default_factory=lambda: [5.0, 10.0, 25.0])
    ofi_levels: list[int] = field(default_factory=lambda: [1, 3, 5])
    slope_depth: int = 10
    flow_depth: int = 5
    capacity: int = 8192

    def __post_init__(self) -> None:
        if self.window_unit not in ("events", "ms"):
            raise UserError(f"features.params.window_unit must be 'events' or 'ms', got {self.window_unit!r}",
                            where="features.params.window_unit")
        # plain Python containers (Hydra hands over ListConfig/DictConfig): the parameters are stored
        # in model metadata and cache keys, which need JSON/YAML-serialisable values
        for name in ("imbalance_depths", "wmid_depths", "vwap_depths", "width_depths", "depth_levels", "ofi_levels"):
            setattr(self, name, [int(k) for k in getattr(self, name)])
        self.liquidity_bps = [float(x) for x in self.liquidity_bps]
        self.windows = {k: float(v) for k, v in dict(self.windows).items()}
        if not isinstance(self.tick_size, int | float):
            self.tick_size = {str(k): float(v) for k, v in dict(self.tick_size).items()}
        if set(self.windows) != set(WINDOWS) or any(v <= 0 for v in self.windows.values()):
            raise UserError(f"features.params.windows needs positive short, medium and long, got {self.windows}",
                            where="features.params.windows")
        if self.capacity < 2 or self.capacity & (self.capacity - 1):
            raise UserError(f"features.params.capacity must be a power of two, got {self.capacity}",
                            where="features.params.capacity", fix="e.g. 4096 or 8192")
        if self.window_unit == "events" and max(self.windows.values()) >= self.capacity:
            raise UserError(f"the long window ({self.windows['long']:.0f} events) must be < capacity "
                            f"({self.capacity})", where="features.params.capacity")

    # -- naming -------------------------------------------------------------------------------
    def wlabel(self, name: str) -> str:
        v = self.windows[name]
        return f"w{v:g}" if self.window_unit == "events" else f"w{v:g}ms"

    def names_price(self) -> list[str]:
        out = ["spread_bps", "spread_ticks", "microprice_gap_bps"]
        out += [f"wmid_gap_bps_{k}" for k in self.wmid_depths]
        for k in self.vwap_depths:
            out += [f"vwap_bid_dist_bps_{k}", f"vwap_ask_dist_bps_{k}"]
        out += ["level_gap_bid_ticks", "level_gap_ask_ticks"]
        out += [f"book_width_bps_{k}" for k in self.width_depths]
        return out

    def names_depth(self) -> list[str]:
        out = ["imbalance_1"] + [f"imbalance_{k}" for k in self.imbalance_depths]
        for k in self.depth_levels:
            out += [f"log_depth_bid_{k}", f"log_depth_ask_{k}"]
        out += [f"slope_bid_{self.slope_depth}", f"slope_ask_{self.slope_depth}", "book_pressure"]
        for x in self.liquidity_bps:
            out += [f"liq_bid_{x:g}bps", f"liq_ask_{x:g}bps", f"liq_imbalance_{x:g}bps"]
        out += ["l1_share_bid", "l1_share_ask"]
        return out

    def names_flow(self) -> list[str]:
        s, m, lw = self.wlabel("short"), self.wlabel("medium"), self.wlabel("long")
        out = [f"ofi_{k}" for k in self.ofi_levels]
        for k in self.ofi_levels:
            out += [f"ofi_{k}_{s}", f"ofi_{k}_{m}"]
        out += ["mid_ret_bps_1", f"mid_ret_bps_{s}", f"mid_ret_bps_{m}", f"mid_ret_bps_{lw}",
                f"micro_ret_bps_{s}", f"micro_ret_bps_{m}", f"rv_bps_{m}", f"rv_bps_{lw}", "ewma_vol_bps",
                f"spread_dev_bps_{m}", f"depth_chg_bid_{self.flow_depth}_{s}", f"depth_chg_ask_{self.flow_depth}_{s}",
                f"imbalance_chg_{s}", "event_rate_hz", f"mid_changes_{lw}", f"mean_dt_ms_{m}",
                "time_since_mid_change_ms", f"bid_depletion_{m}", f"ask_depletion_{m}"]
        return out

    def names(self) -> list[str]:
        return self.names_price() + self.names_depth() + self.names_flow()

    def families(self) -> dict[str, str]:
        fam = {n: "price" for n in self.names_price()}
        fam.update({n: "depth" for n in self.names_depth()})
        fam.update({n: "flow" for n in self.names_flow()})
        return fam

    def log1p_names(self) -> list[str]:
        """Features defined as ln(1 + x): the kernels write x, the engines take ln(1 + x) after."""
        out = [f"log_depth_{side}_{k}" for k in self.depth_levels for side in ("bid", "ask")]
        out += [f"slope_bid_{self.slope_depth}", f"slope_ask_{self.slope_depth}"]
        out += [f"liq_{side}_{x:g}bps" for x in self.liquidity_bps for side in ("bid", "ask")]
        return out

    def log1p_positions(self) -> np.ndarray:
        every = self.names()
        return np.asarray([every.index(f) for f in self.log1p_names()], dtype=np.int64)

    def levels_needed(self) -> dict[str, int]:
        """Deepest book level each feature reads (the set is refused if the data has fewer)."""
        need: dict[str, int] = {n: 1 for n in self.names()}
        need.update({f"wmid_gap_bps_{k}": k for k in self.wmid_depths})
        for k in self.vwap_depths:
            need[f"vwap_bid_dist_bps_{k}"] = need[f"vwap_ask_dist_bps_{k}"] = k
        need["level_gap_bid_ticks"] = need["level_gap_ask_ticks"] = 2
        need.update({f"book_width_bps_{k}": k for k in self.width_depths})
        need.update({f"imbalance_{k}": k for k in self.imbalance_depths})
        for k in self.depth_levels:
            need[f"log_depth_bid_{k}"] = need[f"log_depth_ask_{k}"] = k
        need[f"slope_bid_{self.slope_depth}"] = need[f"slope_ask_{self.slope_depth}"] = self.slope_depth
        for k in self.ofi_levels:
            need[f"ofi_{k}"] = k
            for w in ("short", "medium"):
                need[f"ofi_{k}_{self.wlabel(w)}"] = k
        s = self.wlabel("short")
        need[f"depth_chg_bid_{self.flow_depth}_{s}"] = need[f"depth_chg_ask_{self.flow_depth}_{s}"] = self.flow_depth
        return need

    def tick_for(self, symbol: str | None) -> float:
        if isinstance(self.tick_size, dict):
            if symbol is None:
                return float(next(iter(self.tick_size.values())))
            if symbol not in self.tick_size:
                raise UserError(f"no tick size for symbol {symbol!r}", where="features.params.tick_size",
                                fix=f"Add it: features.params.tick_size={{{symbol}: <tick>, ...}} (have "
                                    f"{sorted(self.tick_size)})")
            return self.tick_size[symbol]
        return float(self.tick_size)

    # -- packing for Numba ------------------------------------------------------------------------
    def packed(self) -> tuple[np.ndarray, np.ndarray]:
        """(float params, int params). Layout read by the kernels with a cursor (see ``kernel.py``)."""
        ints: list[int] = []
        for seq in (self.wmid_depths, self.vwap_depths, self.width_depths, self.imbalance_depths,
                    self.depth_levels, self.ofi_levels):
            ints += [len(seq), *[int(k) for k in seq]]
        ints += [int(self.slope_depth), int(self.flow_depth), int(self.capacity)]
        scale = 1.0 if self.window_unit == "events" else 1e6  # ms -> ns
        alpha = 1.0 - 0.5 ** (1.0 / float(self.ewma_halflife))
        flts = [self.tick_for(None), 0.0 if self.window_unit == "events" else 1.0,
                self.windows["short"] * scale, self.windows["medium"] * scale, self.windows["long"] * scale,
                float(self.rate_window_ms) * 1e6, alpha, float(len(self.liquidity_bps)),
                *[float(x) for x in self.liquidity_bps]]
        return np.asarray(flts, dtype=np.float64), np.asarray(ints, dtype=np.int64)
