"""``mode=stress``: transformations of a real recording, each run through the backtest and the risk
manager, with expectations checked. The suite passes only if every scenario does, and it *can* fail:
with ``risk=none`` the expectations that need the risk manager fail (tested).

Every scenario changes the book inside a window (fractions of the recording) and names what must
hold. Signals: the champion model on features recomputed from the *stressed* book (``stress.signal:
model``), or a simple momentum rule (``momentum``: sign of the 50-snapshot mid return), or always long
(``long``) -- the flash move uses ``long`` so that there is exposure to lose.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from l2exp.backtest.instruments import Instrument
from l2exp.backtest.params import ExecutionParams
from l2exp.backtest.results import BacktestResult
from l2exp.backtest.run import backtest_book
from l2exp.backtest.strategies import Strategy
from l2exp.risk.params import RiskParams


@dataclass
class Check:
    name: str
    passed: bool
    figure: float
    limit: str


@dataclass
class Scenario:
    """Base: ``start``/``length`` are fractions of the recording's rows."""

    start: float = 0.5
    length: float = 0.05
    signal: str | None = None  # override of stress.signal for this scenario
    name: str = field(default="", init=False)

    def window(self, n: int) -> slice:
        a = int(n * self.start)
        return slice(a, min(n, a + max(1, int(n * self.length))))

    def transform(self, book: pd.DataFrame, levels: int, tick: float) -> tuple[pd.DataFrame, slice]:
        raise NotImplementedError

    def execution(self, ex: ExecutionParams) -> ExecutionParams:
        return ex

    def checks(self, res: BacktestResult, book: pd.DataFrame, win: slice, rk: RiskParams,
               ex: ExecutionParams) -> list[Check]:
        raise NotImplementedError


def _submitted_in(res: BacktestResult, book: pd.DataFrame, win: slice, after_ns: float = 0) -> int:
    ts = book.timestamp.to_numpy()
    lo, hi = ts[win.start] + after_ns, ts[win.stop - 1]
    o = res.orders
    opening = o[(o.submit_ts >= lo) & (o.submit_ts <= hi)]
    if res.kill_ts is not None:  # the kill switch's own flattening order is allowed
        opening = opening[opening.submit_ts != res.kill_ts]
    return int(len(opening))


def drawdown_in_limit_currency(res: BacktestResult, rk: RiskParams) -> float:
    """Largest drawdown from the running peak (the start counts), each equity change converted at its
    snapshot's fx when the limits are in quote currency."""
    eq = np.r_[0.0, res.equity_quote() if rk.currency == "quote" else res.equity]
    return float(np.max(np.maximum.accumulate(eq) - eq))


def loss_bound(res: BacktestResult, rk: RiskParams, ex: ExecutionParams, book: pd.DataFrame) -> Check:
    """Drawdown stays within the tighter loss limit plus the cost of getting out on the largest
    position held: the 99.9th-percentile move of one contract's value over the time the exit needs
    (one latency, at least one snapshot, per flatten attempt), the 99.9th-percentile spread, and the
    taker fee -- all
    in the limits' currency (``risk.currency``), through the instrument's value function and fx."""
    inst = res.instrument or Instrument(res.symbol)
    fx = res.fx if (res.fx is not None and rk.currency == "quote") else np.ones(len(res.equity))
    dd = drawdown_in_limit_currency(res, rk)
    v = np.asarray(inst.value(res.mid), dtype=float)  # one contract's value, settlement currency
    unit = v * fx
    step = 0.0
    if len(res.mid) > 2:
        dt_ms = float(np.median(np.diff(res.ts))) / 1e6 or 1.0
        # the exit takes one latency per flatten attempt (the kill switch retries until flat when the
        # book cannot absorb the position at once)
        attempts = max(1, int(res.counters["flatten_attempts"]))
        k = attempts * (int(max(1, np.ceil(ex.latency_ms / dt_ms))) + 1)
        k = min(k, len(res.mid) - 1)
        step = float(np.nanquantile(np.abs(v[k:] - v[:-k]) * fx[k:], 0.999))  # a value move, at its fx
    held = float(np.max(np.abs(res.position))) if len(res.position) else 0.0
    half = np.abs(np.asarray(inst.value(book.ask_price_1.to_numpy(float))) -
                  np.asarray(inst.value(book.bid_price_1.to_numpy(float)))) * fx if len(book) == len(fx) else unit * 0
    spread = float(np.nanquantile(half, 0.999)) if len(half) else 0.0
    fee = float(np.nanmax(np.abs(unit))) * ex.taker_fee_bps * 1e-4 if len(unit) else 0.0
    limit = min(rk.kill_switch.max_drawdown, rk.kill_switch.max_daily_loss) + held * (step + spread + fee)
    return Check("loss_bounded_by_limits", dd <= limit, dd, f"<= {limit:.4g}")


@dataclass
class SpreadBlowout(Scenario):
    """Both sides pushed ``ticks`` ticks away from the mid inside the window."""

    ticks: float = 60.0

    def transform(self, book, levels, tick):  # noqa: ANN001, ANN201
        b = book.copy()
        win = self.window(len(b))
        for i in range(1, levels + 1):
            b.iloc[win, b.columns.get_loc(f"bid_price_{i}")] -= self.ticks * tick
            b.iloc[win, b.columns.get_loc(f"ask_price_{i}")] += self.ticks * tick
        return b, win

    def checks(self, res, book, win, rk, ex):  # noqa: ANN001, ANN201
        n = _submitted_in(res, book, win, after_ns=ex.latency_ms * 1e6)
        return [Check("no_orders_on_wide_spread", n == 0, n, "== 0"), loss_bound(res, rk, ex, book)]


@dataclass
class LiquidityHole(Scenario):
    """Every level but the first removed, the first shrunk to ``size`` units."""

    size: float = 1.0

    def transform(self, book, levels, tick):  # noqa: ANN001, ANN201
        b = book.copy()
        win = self.window(len(b))
        for side in ("bid", "ask"):
            b.iloc[win, b.columns.get_loc(f"{side}_size_1")] = self.size
            for i in range(2, levels + 1):
                for f in ("price", "size"):
                    b.iloc[win, b.columns.get_loc(f"{side}_{f}_{i}")] = np.nan
        return b, win

    def checks(self, res, book, win, rk, ex):  # noqa: ANN001, ANN201
        n = _submitted_in(res, book, win, after_ns=ex.latency_ms * 1e6)
        return [Check("no_orders_into_a_hole", n == 0, n, "== 0"), loss_bound(res, rk, ex, book)]


@dataclass
class FlashMove(Scenario):
    """Prices fall by ``move`` (fraction) linearly over the window and stay there."""

    move: float = 0.05
    signal: str | None = "long"

    def transform(self, book, levels, tick):  # noqa: ANN001, ANN201
        b = book.copy()
        win = self.window(len(b))
        factor = np.ones(len(b))
        factor[win] = 1 - self.move * np.linspace(0, 1, win.stop - win.start)
        factor[win.stop:] = 1 - self.move
        for side in ("bid", "ask"):
            for i in range(1, levels + 1):
                c = f"{side}_price_{i}"
                b[c] = np.round(b[c] * factor / tick) * tick
        return b, win

    def checks(self, res, book, win, rk, ex):  # noqa: ANN001, ANN201
        """Either the loss stayed inside the money limits (volatility targeting cut the position as
        the move gathered pace) or the kill switch fired and left the book flat."""
        fired = res.kill_ts is not None
        worst = drawdown_in_limit_currency(res, rk)
        inside = worst < min(rk.kill_switch.max_drawdown, rk.kill_switch.max_daily_loss)
        return [Check("kill_switch_fires_or_loss_inside_limits", fired or inside, worst,
                      f"fired, or < {min(rk.kill_switch.max_drawdown, rk.kill_switch.max_daily_loss):.4g}"),
                Check("flat_after_kill", (not fired) or res.position[-1] == 0, float(res.position[-1]),
                      "== 0 if fired"),
                loss_bound(res, rk, ex, book)]


@dataclass
class FeedGap(Scenario):
    """The window's snapshots are missing: the feed is silent, then resumes."""

    length: float = 0.02

    def transform(self, book, levels, tick):  # noqa: ANN001, ANN201
        win = self.window(len(book))
        keep = np.ones(len(book), dtype=bool)
        keep[win] = False
        b = book[keep].reset_index(drop=True)
        return b, slice(win.start, min(win.start + 1, len(b)))  # the first snapshot after the gap

    def checks(self, res, book, win, rk, ex):  # noqa: ANN001, ANN201
        gap_ms = float((book.timestamp.iloc[win.start] - book.timestamp.iloc[win.start - 1]) / 1e6)
        blocked = res.blocks["stale_book"]
        n = _submitted_in(res, book, win)
        killed_before = res.kill_ts is not None and res.kill_ts < book.timestamp.iloc[win.start]
        # blocks count order intents: a strategy that wanted no order after the gap had nothing to block
        ok = blocked >= 1 or n == 0 or gap_ms <= rk.gates.stale_ms or killed_before
        return [Check("stale_after_gap_blocked", ok, blocked, ">= 1 (unless no order was wanted, or killed)"),
                Check("no_order_right_after_gap", n == 0, n, "== 0"), loss_bound(res, rk, ex, book)]


@dataclass
class StaleBook(Scenario):
    """The book freezes (the window repeats its first snapshot) while time goes on."""

    def transform(self, book, levels, tick):  # noqa: ANN001, ANN201
        b = book.copy()
        win = self.window(len(b))
        cols = [c for c in b.columns if c.startswith(("bid_", "ask_"))]
        b.loc[b.index[win], cols] = b.loc[b.index[win.start], cols].to_numpy()
        return b, win

    def checks(self, res, book, win, rk, ex):  # noqa: ANN001, ANN201
        n = _submitted_in(res, book, win, after_ns=rk.gates.stale_ms * 1e6 + ex.latency_ms * 1e6)
        return [Check("no_orders_on_frozen_book", n == 0, n, "== 0"), loss_bound(res, rk, ex, book)]


@dataclass
class LatencySpike(Scenario):
    """Order and cancel latency multiplied for the whole run."""

    latency_ms: float = 500.0

    def transform(self, book, levels, tick):  # noqa: ANN001, ANN201
        return book, self.window(len(book))

    def execution(self, ex):  # noqa: ANN001, ANN201
        from dataclasses import replace

        return replace(ex, latency_ms=self.latency_ms, cancel_latency_ms=self.latency_ms)

    def checks(self, res, book, win, rk, ex):  # noqa: ANN001, ANN201
        f, o = res.fills, res.orders
        if len(f):
            delay = (f.ts.to_numpy() - o.submit_ts.to_numpy()[f.order.to_numpy()]) / 1e6
            early = int((delay < self.latency_ms - 1e-6).sum())
        else:
            early = 0
        return [Check("no_fill_before_latency", early == 0, early, "== 0"), loss_bound(res, rk, ex, book)]


@dataclass
class CrossedInjection(Scenario):
    """Every ``every``-th snapshot made crossed (best bid above best ask): garbage from the feed."""

    every: int = 97

    def transform(self, book, levels, tick):  # noqa: ANN001, ANN201
        b = book.copy()
        rows = np.arange(0, len(b), self.every)
        b.iloc[rows, b.columns.get_loc("bid_price_1")] = b.ask_price_1.iloc[rows] + tick
        return b, slice(0, len(b))

    def checks(self, res, book, win, rk, ex):  # noqa: ANN001, ANN201
        crossed = book.bid_price_1 >= book.ask_price_1
        # timestamps repeat (BitMEX milliseconds): only times at which every snapshot was crossed
        crossed_ts = np.setdiff1d(book.timestamp[crossed].to_numpy(), book.timestamp[~crossed].to_numpy())
        bad_fills = int(np.isin(res.fills.ts.to_numpy(), crossed_ts).sum())
        bad_orders = int(np.isin(res.orders.submit_ts.to_numpy(), crossed_ts).sum())
        return [Check("no_fill_on_crossed", bad_fills == 0, bad_fills, "== 0"),
                Check("no_decision_on_crossed", bad_orders == 0, bad_orders, "== 0"), loss_bound(res, rk, ex, book)]


def scaled_sizes(notional: float | None, inst: Instrument, book: pd.DataFrame, fx0: np.ndarray, st: Strategy,
                 rk: RiskParams, lot: float) -> tuple[Strategy, RiskParams, float]:
    """Scale the strategy's base size (and the profile's max_position in proportion) so that the base
    position is worth ``notional`` in quote currency at the first snapshot; a profile sizing in money
    (``risk.sizing.unit_notional``) gets that unit instead, worth ``notional`` at every snapshot.

    Why: risk profiles state positions in contracts and money limits in a currency. One XBTUSD contract
    is 1 USD, one BTCUSDT unit ~17,000 USDT: the same profile is a toy on one and a fortune on the other.
    A stress test needs positions whose losses can reach the money limits, on any instrument.
    """
    if not notional or not len(book):
        return st, rk, 1.0
    if rk.sizing.unit_notional > 0:  # the profile sizes in money already: the base position is worth `notional`
        sizing = replace(rk.sizing, unit_notional=float(notional) / st.base_size)
        return st, replace(rk, sizing=sizing), float(sizing.unit_notional / rk.sizing.unit_notional)
    mid0 = 0.5 * (float(book.bid_price_1.iloc[0]) + float(book.ask_price_1.iloc[0]))
    per_contract = abs(float(inst.value(mid0))) * float(fx0[0])  # quote value of one contract
    scale = float(notional) / (per_contract * st.base_size)
    base = max(np.floor(st.base_size * scale / lot) * lot, lot)
    limits = replace(rk.limits, max_position=float(rk.limits.max_position * base / st.base_size))
    return replace(st, base_size=float(base)), replace(rk, limits=limits), float(base / st.base_size)


def momentum_signal(book: pd.DataFrame, window: int = 50) -> np.ndarray:
    mid = (book.bid_price_1 + book.ask_price_1).to_numpy() / 2
    ret = np.full(len(mid), np.nan)
    ret[window:] = np.sign(mid[window:] - mid[:-window])
    return ret


def run_scenario(sc: Scenario, book: pd.DataFrame, signal_fn: Any, levels: int, tick: float, ex: ExecutionParams,
                 st: Strategy, rk: RiskParams, instrument: Instrument | None = None,
                 fx_fn: Any = None) -> dict[str, Any]:
    stressed, win = sc.transform(book, levels, tick)
    sig = signal_fn(stressed, sc.signal)
    ex2 = sc.execution(ex)
    fx = fx_fn(stressed) if fx_fn is not None else None
    res = backtest_book(stressed, sig, None, ex2, st, rk, levels, instrument, fx)
    checks = sc.checks(res, stressed, win, rk, ex2)
    m = res.metrics()
    return {"scenario": sc.name, "passed": all(c.passed for c in checks),
            "checks": {c.name: {"passed": c.passed, "figure": c.figure, "limit": c.limit} for c in checks},
            "pnl_net": m["pnl_net"], "max_drawdown": m["max_drawdown"], "kill_switch": res.kill_ts is not None,
            "n_orders": m["n_orders"], "n_fills": m["n_fills"], "risk_blocks": res.blocks}




def _html(table: pd.DataFrame, symbol: str, risk: str, passed: bool) -> str:
    colour = table.passed.map({True: "#e3f5e1", False: "#fbe3e3"})
    body = "".join(f'<tr style="background:{c}">' + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
                   for c, row in zip(colour, table.itertuples(index=False), strict=True))
    head = "".join(f"<th>{c}</th>" for c in table.columns)
    verdict = "PASSED" if passed else "FAILED"
    return (f"<html><head><meta charset='utf-8'><title>stress {symbol}</title></head>"
            f"<body style='font-family:sans-serif'><h2>Stress suite: {symbol}, risk={risk}: {verdict}</h2>"
            f"<table border=1 cellpadding=4 style='border-collapse:collapse'><tr>{head}</tr>{body}</table>"
            "</body></html>")
