"""Backtest results: tables and the report metrics (money in the instrument's settlement currency,
``pnl_net_quote`` in its quote currency: each equity change converted at the fx of its snapshot).

Time-based figures are measured **inside sessions** (:mod:`l2exp.sessions`): a recording with a
days-long gap is two sessions, and the gap is neither a flat stretch of equity (which would shrink
volatility and inflate Sharpe) nor time in or out of the market.

Sharpe = mean / std (ddof 1) of the equity change over consecutive ``period_s`` intervals on a grid
starting at each session's first snapshot (equity marked to mid at the last snapshot at or before
each grid point; the unfinished interval at a session's end is left out), annualised by
sqrt(``seconds_per_year`` / ``period_s``). Changes of equity, not of log equity: the strategy has no
capital base, and Sharpe is scale-free. Fewer than ``min_periods`` intervals (default 20: an
annualised figure from three minutes is noise), or no variation: undefined (NaN), and said so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import pandas as pd

from l2exp.backtest.instruments import Instrument
from l2exp.backtest.types import BLOCK_REASONS, FILL_RULES, LIMIT
from l2exp.sessions import DEFAULT_GAP_MS, session_ids

SECONDS_PER_YEAR = 365.25 * 86_400  # a 24/7 venue; an exchange with sessions: ~252 * 6.5 * 3600


def sharpe_ratio(ts: np.ndarray, equity: np.ndarray, gap_ms: float, period_s: float = 60.0,
                 seconds_per_year: float = SECONDS_PER_YEAR, min_periods: int = 20) -> tuple[float, int]:
    """(annualised Sharpe, number of intervals) -- see the module docstring for the definition."""
    if period_s <= 0:
        raise ValueError("period_s must be > 0")
    period_ns = int(round(period_s * 1e9))
    sid = session_ids(ts, gap_ms)
    changes: list[np.ndarray] = []
    for k in range(int(sid[-1]) + 1 if len(sid) else 0):
        sel = np.flatnonzero(sid == k)
        s_ts, s_eq = ts[sel], equity[sel]
        n = int((s_ts[-1] - s_ts[0]) // period_ns)
        if n < 1:
            continue
        grid = s_ts[0] + np.arange(n + 1, dtype=np.int64) * period_ns
        changes.append(np.diff(s_eq[np.searchsorted(s_ts, grid, side="right") - 1]))
    d = np.concatenate(changes) if changes else np.zeros(0)
    if len(d) < max(min_periods, 2) or np.std(d, ddof=1) == 0:
        return float("nan"), len(d)
    return float(d.mean() / d.std(ddof=1) * np.sqrt(seconds_per_year / period_s)), len(d)


@dataclass
class BacktestResult:
    symbol: str
    ts: np.ndarray
    mid: np.ndarray
    position: np.ndarray
    cash: np.ndarray
    equity: np.ndarray
    fills: pd.DataFrame
    orders: pd.DataFrame
    blocks: dict[str, int]
    counters: dict[str, float]  # n_orders, n_fills, n_cancels, ioc_unfilled, killed, kill_ts, flatten_attempts
    instrument: Instrument | None = None
    fx: np.ndarray | None = None  # settlement -> quote per snapshot
    funding: pd.DataFrame | None = None  # per funding time: ts, rate, position, mark, payment (backtest.funding)

    def metrics(self, period_s: float = 60.0, gap_ms: float = DEFAULT_GAP_MS,
                seconds_per_year: float = SECONDS_PER_YEAR, min_periods: int = 20) -> dict[str, float]:
        f = self.fills
        eq = pd.Series(self.equity)
        span_s = max((self.ts[-1] - self.ts[0]) / 1e9, 1e-9) if len(self.ts) else 1e-9
        sharpe, n_periods = sharpe_ratio(self.ts, self.equity, gap_ms, period_s, seconds_per_year, min_periods) \
            if len(self.ts) else (float("nan"), 0)
        dd = (eq.cummax().clip(lower=0) - eq).max() if len(eq) else 0.0  # from the starting equity 0 too
        inst = self.instrument
        notional = float((f.qty * np.abs(inst.value(f.price.to_numpy()) if inst else f.price)).sum()) if len(f) else 0.0
        pnl_quote = float(self.equity_quote()[-1]) if len(self.equity) else 0.0
        slip = slippage_bps(f) if len(f) else pd.Series(dtype=float)
        limit = self.orders[self.orders.type == LIMIT]
        fill_ratio = float(((limit.qty - limit.remaining).sum()) / limit.qty.sum()) if len(limit) else float("nan")
        sid = session_ids(self.ts, gap_ms)
        same = sid[1:] == sid[:-1]  # intervals inside a session; a gap is no time at all
        held = np.abs(self.position[:-1]) > 0
        dt = np.diff(self.ts).astype(float) * same
        session_s = float(dt.sum() / 1e9)
        in_market = float((dt * held).sum() / dt.sum()) if len(dt) and dt.sum() > 0 else 0.0
        pnl = float(self.equity[-1]) if len(self.equity) else 0.0
        fees = float(f.fee.sum()) if len(f) else 0.0
        funding = self.funding_total()
        # the same amounts in quote currency, each at the fx of its own time (fills, funding, equity marks)
        fx_fill = self.fx_at(f.ts.to_numpy(np.int64)) if len(f) else np.zeros(0)
        fees_q = float((f.fee.to_numpy(float) * fx_fill).sum()) if len(f) else 0.0
        turnover_q = float((f.qty.to_numpy(float) * np.abs(inst.value(f.price.to_numpy())) * fx_fill).sum()) \
            if len(f) and inst else notional
        fund = self.funding
        funding_q = float((fund.payment * self.fx_at(fund.ts.to_numpy(np.int64))).sum()) \
            if fund is not None and len(fund) else (funding if not np.isfinite(funding) else 0.0)
        eq_q = pd.Series(self.equity_quote()) if len(self.equity) else pd.Series(dtype=float)
        dd_q = float((eq_q.cummax().clip(lower=0) - eq_q).max()) if len(eq_q) else 0.0
        return {
            # pnl_net = trading (pnl_gross) - fees + funding, every amount in settlement currency
            "pnl_net": pnl, "pnl_net_quote": pnl_quote, "fees": fees,
            "pnl_gross": pnl + fees - (funding if np.isfinite(funding) else 0.0), "funding": funding,
            "funding_payments": float(len(self.funding)) if self.funding is not None else 0.0,
            "fees_quote": fees_q, "funding_quote": funding_q, "max_drawdown_quote": dd_q, "turnover_quote": turnover_q,
            "pnl_bps_of_turnover": pnl_quote / turnover_q * 1e4 if turnover_q > 0 else float("nan"),
            "sharpe": sharpe, "sharpe_period_s": float(period_s), "sharpe_periods": float(n_periods),
            "max_drawdown": float(dd), "turnover": float(notional),
            "hit_rate": hit_rate(f, inst),
            "avg_slippage_bps": float(slip.mean()) if len(slip) else float("nan"),
            "taker_slippage_bps": float(slip[f.maker == 0].mean()) if len(f) and (f.maker == 0).any() else float("nan"),
            "passive_fill_ratio": fill_ratio, "time_in_market": in_market,
            "n_orders": int(self.counters["n_orders"]), "n_fills": int(self.counters["n_fills"]),
            "n_cancels": int(self.counters["n_cancels"]), "ioc_unfilled": int(self.counters["ioc_unfilled"]),
            "kill_switch": float(self.counters["killed"]),
            "kill_flatten_attempts": int(self.counters["flatten_attempts"]),
            # orders sent smaller than the (money) size asked, the lot grid rounding down; and by how much
            "size_rounded_orders": int(self.counters.get("rounded_orders", 0)),
            "size_rounded_qty": float(self.counters.get("rounded_qty", 0.0)),
            "final_position": float(self.position[-1]) if len(self.position) else 0.0,
            **{f"fills_{rule}": int((f.fill_rule == rule).sum()) if len(f) else 0 for rule in FILL_RULES},
            "span_seconds": float(span_s), "session_seconds": session_s, "sessions": float(sid[-1] + 1) if len(sid)
            else 0.0,
        }

    def funding_total(self) -> float:
        """Funding received (+) or paid (-), settlement currency; NaN for a perpetual whose funding is not
        modelled (never a silent zero), 0 for an instrument without funding."""
        if self.instrument is not None and self.instrument.funding_status == "not modelled":
            return float("nan")
        return float(self.funding.payment.sum()) if self.funding is not None and len(self.funding) else 0.0

    def fills_by_rule(self) -> dict[str, int]:
        """How many fills each matching rule produced (``engine``'s docstring): print, book_through, taker."""
        f = self.fills
        return {rule: int((f.fill_rule == rule).sum()) if len(f) else 0 for rule in FILL_RULES}

    def fx_at(self, when: np.ndarray) -> np.ndarray:
        """settlement -> quote at the last snapshot at or before each time (1 without fx)."""
        if self.fx is None or not len(self.ts):
            return np.ones(len(when))
        return self.fx[np.clip(np.searchsorted(self.ts, when, side="right") - 1, 0, len(self.ts) - 1)]

    def equity_quote(self) -> np.ndarray:
        """Equity in quote currency: each change of the settlement-currency equity converted at the fx of
        its snapshot (settlement amounts are converted when they are made, not at the end)."""
        fx = self.fx if self.fx is not None else np.ones(len(self.equity))
        return np.cumsum(np.diff(np.r_[0.0, self.equity]) * fx)

    def pnl_by(self, gap_ms: float = DEFAULT_GAP_MS) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(per-session, per-UTC-day) PnL tables. A session's (day's) PnL is its last equity minus the
        previous one's last equity, so the rows add up to ``pnl_net`` and a move across a gap belongs to
        the session (day) whose first mark shows it."""
        if not len(self.ts):
            empty = pd.DataFrame(columns=["start", "end", "snapshots", "funding", "pnl"])
            return empty, empty
        df = pd.DataFrame({"ts": self.ts, "equity": self.equity, "session": session_ids(self.ts, gap_ms),
                           "day": pd.to_datetime(self.ts, utc=True).date})
        # each funding payment goes to the session (day) of the first snapshot whose equity shows it
        pay = np.zeros(len(self.ts))
        if self.funding is not None and len(self.funding):
            at = np.searchsorted(self.ts, self.funding.ts.to_numpy(np.int64), side="left")
            ok = at < len(self.ts)
            np.add.at(pay, at[ok], self.funding.payment.to_numpy(float)[ok])
        df["funding"] = pay
        out = []
        for key in ("session", "day"):
            g = df.groupby(key, sort=True)
            t = pd.DataFrame({"start": pd.to_datetime(g.ts.first(), utc=True),
                              "end": pd.to_datetime(g.ts.last(), utc=True), "snapshots": g.size(),
                              "end_equity": g.equity.last(), "funding": g.funding.sum()})
            t["pnl"] = t.end_equity.diff().fillna(t.end_equity.iloc[0])
            out.append(t.drop(columns="end_equity").reset_index())
        return out[0], out[1]

    @property
    def kill_ts(self) -> int | None:
        """Epoch ns at which the kill switch fired (None if it did not)."""
        if not self.counters["killed"] or not len(self.ts):
            return None
        return int(self.ts[0]) + int(round(self.counters["kill_ts"]))


def slippage_bps(fills: pd.DataFrame) -> pd.Series:
    """Signed cost of each fill vs the mid at the fill, bps: positive = paid more than mid (buy) / got
    less (sell)."""
    return fills.side * (fills.price - fills.mid) / fills.mid * 1e4


@nb.njit(cache=True)
def _trip_pnl(side: np.ndarray, qty: np.ndarray, cash: np.ndarray, fee: np.ndarray) -> np.ndarray:
    """Realised PnL of each closed round trip (flat -> exposed -> flat, or flipped), fill by fill: each
    fill's cash flow -side q v(p) and its fee go to the trip they open or close; a fill that flips the
    position is split pro rata between the trip it closes and the one it opens. Written as a compiled
    loop: the split makes it sequential, and a run can have millions of fills."""
    out = np.empty(side.shape[0])
    n = 0
    pos = 0.0
    acc = 0.0
    for k in range(side.shape[0]):
        q = qty[k]
        per = (cash[k] - fee[k]) / q if q > 0 else 0.0
        if pos != 0.0 and side[k] * pos < 0 and q > abs(pos) + 1e-12:  # flips: close |pos|, open the rest
            close = abs(pos)
            out[n] = acc + per * close
            n += 1
            acc = per * (q - close)
            pos += side[k] * q
            continue
        acc += per * q
        pos += side[k] * q
        if abs(pos) < 1e-12:
            pos = 0.0
            out[n] = acc
            n += 1
            acc = 0.0
    return out[:n]


def round_trips(fills: pd.DataFrame, inst: Instrument | None) -> np.ndarray:
    """Realised PnL (settlement currency) of each closed round trip, entry and exit fees and the spread
    paid included (every fill at its own price); the open trip at the end is not counted."""
    if not len(fills):
        return np.zeros(0)
    px = fills.price.to_numpy(float)
    v = inst.value(px) if inst is not None else px
    side = fills.side.to_numpy(float)
    qty = fills.qty.to_numpy(float)
    return _trip_pnl(side, qty, -side * qty * v, fills.fee.to_numpy(float))


def hit_rate(fills: pd.DataFrame, inst: Instrument | None) -> float:
    """Share of closed round trips that made money after fees (a round trip bought and sold at one price
    with taker fees is a loss, not a hit); NaN without a closed trip."""
    pnl = round_trips(fills, inst)
    return float((pnl > 0).mean()) if len(pnl) else float("nan")


def tables(fills: np.ndarray, n_fills: int, orders: np.ndarray, n_orders: int,
           t0: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fills and orders (``types.FILL`` / ``types.ORDER`` records) as DataFrames; the loop's time offsets
    become epoch ns again (+ t0). A market order's price (+-inf: no limit) is shown as NaN."""
    f = fills[:n_fills]
    fdf = pd.DataFrame({"ts": np.rint(f["ts"]).astype(np.int64) + t0, "order": f["order"],
                        "side": f["side"], "qty": f["qty"], "price": f["price"], "fee": f["fee"],
                        "maker": f["maker"].astype(float), "mid": f["mid"], "level": f["level"].astype(int),
                        "fill_rule": pd.Categorical.from_codes(f["rule"].astype(np.int64), FILL_RULES)})
    o = orders[:n_orders]
    odf = pd.DataFrame({"submit_ts": np.rint(o["submit_ts"]).astype(np.int64) + t0,
                        "side": o["side"], "type": o["kind"], "price": np.where(np.isfinite(o["price"]), o["price"],
                                                                               np.nan),
                        "qty": o["qty"], "remaining": o["rem"], "status": o["status"].astype(int)})
    return fdf, odf


def counters_of(account: np.ndarray, risk_state: np.ndarray) -> dict[str, float]:
    """The run's counters from the loop's account and risk-state records."""
    a, r = account[0], risk_state[0]
    return {"n_orders": int(a["n_orders"]), "n_fills": int(a["n_fills"]), "n_cancels": int(a["n_cancels"]),
            "ioc_unfilled": int(a["ioc_unfilled"]), "overflow": int(a["overflow"]), "killed": int(r["killed"]),
            "kill_ts": float(r["kill_ts"]), "flatten_attempts": int(r["flatten_attempts"]),
            "rounded_orders": int(a["rounded_orders"]), "rounded_qty": float(a["rounded_qty"])}


def blocks_dict(blocks: np.ndarray) -> dict[str, int]:
    return {name: int(blocks[k]) for k, name in enumerate(BLOCK_REASONS)}
