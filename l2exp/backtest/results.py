"""Backtest results: tables and the report metrics (all in quote currency unless said)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from l2exp.backtest.layout import (
    BLOCK_REASONS,
    C_CANCELS,
    C_FILLS,
    C_IOC_UNFILLED,
    C_KILL_TS,
    C_KILLED,
    C_ORDERS,
    F_FEE,
    F_LEVEL,
    F_MAKER,
    F_MID,
    F_ORDER,
    F_PRICE,
    F_QTY,
    F_SIDE,
    F_TS,
    LIMIT,
    O_PRICE,
    O_QTY,
    O_REM,
    O_SIDE,
    O_STATUS,
    O_SUBMIT_TS,
    O_TYPE,
)

SECONDS_PER_YEAR = 365.25 * 86_400


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
    counters: np.ndarray

    def metrics(self) -> dict[str, float]:
        f = self.fills
        eq = pd.Series(self.equity, index=pd.to_datetime(self.ts))
        span_s = max((self.ts[-1] - self.ts[0]) / 1e9, 1e-9) if len(self.ts) else 1e-9
        per_s = eq.resample("1s").last().ffill().diff().dropna()
        sharpe = float(per_s.mean() / per_s.std() * np.sqrt(SECONDS_PER_YEAR)) if per_s.std() > 0 else 0.0
        dd = (eq.cummax() - eq).max() if len(eq) else 0.0
        notional = (f.qty * f.price).sum() if len(f) else 0.0
        slip = (f.side * (f.price - f.mid) / f.mid * 1e4) if len(f) else pd.Series(dtype=float)
        limit = self.orders[self.orders.type == LIMIT]
        fill_ratio = float(((limit.qty - limit.remaining).sum()) / limit.qty.sum()) if len(limit) else float("nan")
        held = np.abs(self.position[:-1]) > 0
        dt = np.diff(self.ts)
        in_market = float((dt * held).sum() / dt.sum()) if len(dt) and dt.sum() > 0 else 0.0
        pnl = float(self.equity[-1]) if len(self.equity) else 0.0
        fees = float(f.fee.sum()) if len(f) else 0.0
        return {
            "pnl_net": pnl, "fees": fees, "pnl_gross": pnl + fees,
            "sharpe": sharpe, "max_drawdown": float(dd), "turnover": float(notional),
            "hit_rate": _hit_rate(self.position, self.equity),
            "avg_slippage_bps": float(slip.mean()) if len(slip) else float("nan"),
            "taker_slippage_bps": float(slip[f.maker == 0].mean()) if len(f) and (f.maker == 0).any() else float("nan"),
            "passive_fill_ratio": fill_ratio, "time_in_market": in_market,
            "n_orders": int(self.counters[C_ORDERS]), "n_fills": int(self.counters[C_FILLS]),
            "n_cancels": int(self.counters[C_CANCELS]), "ioc_unfilled": int(self.counters[C_IOC_UNFILLED]),
            "kill_switch": float(self.counters[C_KILLED]),
            "final_position": float(self.position[-1]) if len(self.position) else 0.0,
            "span_seconds": float(span_s),
        }

    @property
    def kill_ts(self) -> int | None:
        """Epoch ns at which the kill switch fired (None if it did not)."""
        if not self.counters[C_KILLED] or not len(self.ts):
            return None
        return int(self.ts[0]) + int(round(self.counters[C_KILL_TS]))


def _hit_rate(position: np.ndarray, equity: np.ndarray) -> float:
    """Share of round trips (flat -> exposed -> flat or flipped) that made money."""
    flat = np.flatnonzero(np.r_[True, np.sign(position[1:]) != np.sign(position[:-1])])
    if len(flat) < 2:
        return float("nan")
    pnl = np.diff(equity[flat])
    traded = pnl[np.abs(position[flat[:-1]]) > 0] if len(flat) > 1 else pnl
    return float((traded > 0).mean()) if len(traded) else float("nan")


def tables(fills: np.ndarray, n_fills: int, orders: np.ndarray, n_orders: int,
           t0: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fills and orders as DataFrames; the loop's time offsets become epoch ns again (+ t0)."""
    f = fills[:n_fills]
    fdf = pd.DataFrame({"ts": np.rint(f[:, F_TS]).astype(np.int64) + t0,
                        "order": f[:, F_ORDER].astype(np.int64),
                        "side": f[:, F_SIDE], "qty": f[:, F_QTY], "price": f[:, F_PRICE], "fee": f[:, F_FEE],
                        "maker": f[:, F_MAKER], "mid": f[:, F_MID], "level": f[:, F_LEVEL].astype(int)})
    o = orders[:n_orders]
    odf = pd.DataFrame({"submit_ts": np.rint(o[:, O_SUBMIT_TS]).astype(np.int64) + t0,
                        "side": o[:, O_SIDE], "type": o[:, O_TYPE],
                        "price": o[:, O_PRICE], "qty": o[:, O_QTY], "remaining": o[:, O_REM],
                        "status": o[:, O_STATUS].astype(int)})
    return fdf, odf


def blocks_dict(blocks: np.ndarray) -> dict[str, int]:
    return {name: int(blocks[k]) for k, name in enumerate(BLOCK_REASONS)}
