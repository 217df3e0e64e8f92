"""The interactive backtest report: one page per backtest run (logged by the run itself as
``report.html``) and the comparison page of several runs (``mode=analyze``), both built from
:class:`BacktestView` -- the columns a report needs, taken from a finished ``BacktestResult`` or read
back from a logged run's ``tables/`` (so a report can be rebuilt for any run, old ones included)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from l2exp.analysis import charts
from l2exp.analysis.pages import facts_html, page, table_html
from l2exp.backtest.results import slippage_bps


@dataclass
class BacktestView:
    name: str                 # short label in legends: "<run id[:8]> <risk>"
    symbol: str
    settle: str               # currency of equity, PnL and fees
    ts: np.ndarray            # epoch ns per traded snapshot
    equity: np.ndarray        # settlement currency
    position: np.ndarray      # contracts
    fills: pd.DataFrame       # ts, side, qty, price, fee, maker, mid, level
    blocks: dict[str, float]  # risk blocks by reason
    by_session: pd.DataFrame  # session, start, end, snapshots, pnl
    metrics: dict[str, float] = field(default_factory=dict)
    facts: list[tuple[str, object]] = field(default_factory=list)

    @staticmethod
    def label(run_id: str, risk: str) -> str:
        """The short name in legends and tables: ``<run id[:8]> <risk profile>``."""
        return f"{run_id[:8]} {risk}".strip()

    @classmethod
    def from_run(cls, run: Any) -> BacktestView:
        """Read a logged backtest run (``tables/positions.parquet``, ``fills.parquet``, ``pnl_by_session.csv``
        and its ``risk_block_*`` metrics)."""
        import mlflow

        rid = run.info.run_id
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(mlflow.artifacts.download_artifacts(f"runs:/{rid}/tables", dst_path=tmp))
            pos = pd.read_parquet(local / "positions.parquet")
            fills = pd.read_parquet(local / "fills.parquet")
            sess = local / "pnl_by_session.csv"
            by_session = pd.read_csv(sess) if sess.exists() else None
        m = dict(run.data.metrics)
        tags = run.data.tags
        return cls(name=cls.label(rid, tags.get("l2exp.risk", "")), symbol=tags.get("l2exp.symbol", "?"),
                   settle=tags.get("l2exp.settle_currency", "quote"), ts=pos.ts.to_numpy(np.int64),
                   equity=pos.equity.to_numpy(float), position=pos.position.to_numpy(float), fills=fills,
                   blocks={k.removeprefix("risk_block_"): v for k, v in m.items() if k.startswith("risk_block_")},
                   by_session=by_session, metrics=m,
                   facts=[("run", f"{rid} ({run.info.run_name})"), ("model", tags.get("l2exp.model_uri", "?")),
                          ("symbol", tags.get("l2exp.symbol", "?")), ("contract", tags.get("l2exp.contract", "?")),
                          ("settles in", tags.get("l2exp.settle_currency", "?")),
                          ("risk profile", tags.get("l2exp.risk", "?"))])

    def headline(self) -> dict[str, Any]:
        """The comparison row: what a researcher ranks backtests by."""
        f = self.fills
        m = {k: self.metrics.get(k, np.nan) for k in ("pnl_net", "pnl_net_quote", "fees", "sharpe", "max_drawdown",
                                                      "n_orders", "time_in_market")}  # not logged = undefined
        slip = slippage_bps(f) if len(f) else pd.Series(dtype=float)
        return {"run": self.name, "symbol": self.symbol, "settle": self.settle, "pnl_net": m["pnl_net"],
                "pnl_net_quote": m["pnl_net_quote"], "fees": m["fees"], "sharpe": m["sharpe"],
                "max_drawdown": m["max_drawdown"], "fills": len(f), "orders": m["n_orders"],
                "maker_share": float(f.maker.mean()) if len(f) else np.nan,
                "slippage_bps_mean": float(slip.mean()) if len(slip) else np.nan,
                "slippage_bps_p95": float(slip.quantile(0.95)) if len(slip) else np.nan,
                "time_in_market": m["time_in_market"],
                "risk_blocks": int(sum(v for k, v in self.blocks.items() if k != "no_signal"))}


def run_page(view: BacktestView, book: pd.DataFrame | None, levels: int, title: str) -> str:
    """The page a backtest run logs as ``report.html``."""
    fills_view: list[Any] = ([charts.book_fills_chart(book, view.fills, levels, f"{view.symbol}: book and fills")]
                             if book is not None and len(book) else
                             ["<p class='note'>the book of this run is not in the store any more</p>"])
    span = ""
    if len(view.ts):
        span = f"{pd.Timestamp(int(view.ts[0]), tz='UTC')} .. {pd.Timestamp(int(view.ts[-1]), tz='UTC')}"
    return page(title, [
        ("summary", [facts_html(view.facts), table_html([view.headline()])]),
        ("equity", [charts.equity_chart(view.ts, view.equity, view.position, view.settle)]),
        ("fills over the book", fills_view),
        ("PnL by time", [charts.pnl_bars(view.ts, view.equity, view.by_session, view.settle)]),
        ("slippage", [charts.slippage_chart(view.fills)]),
        ("risk", [charts.risk_blocks_chart(view.blocks)]),
    ], subtitle=f"{view.symbol}, {len(view.ts):,} snapshots traded, {span}; PnL and fees in {view.settle}")


def comparison_page(views: list[BacktestView], books: dict[str, pd.DataFrame], levels: int, title: str,
                    left_out: list[str] | None = None) -> str:
    """Several backtests side by side: the headline table, equity and drawdown on one axis, PnL per clock
    bucket (one grid for all runs), slippage, risk blocks; then the book of each symbol and each run's
    fills over it."""
    settle = ", ".join(sorted({v.settle for v in views}))
    t0 = min((int(v.ts[0]) for v in views if len(v.ts)), default=0)
    t1 = max((int(v.ts[-1]) for v in views if len(v.ts)), default=0)
    size, label = charts.bucket_for(t1 - t0)
    buckets = pd.DataFrame({v.name: charts.pnl_bucket(v.ts, v.equity, size) for v in views}).fillna(0.0)
    buckets.index = pd.to_datetime(buckets.index, unit="ms", utc=True).strftime("%m-%d %H:%M")
    blocks = pd.DataFrame({v.name: v.blocks for v in views}).fillna(0.0)
    blocks = blocks[(blocks > 0).any(axis=1)]
    sections: list[tuple[str, list[Any]]] = [
        ("runs", [table_html([v.headline() for v in views])]
         + ([table_html([{"left out": w} for w in left_out])] if left_out else [])),
        ("equity", [charts.equity_overlay({v.name: (v.ts, v.equity) for v in views}, settle,
                                          elapsed=_apart(views))]),
        ("PnL by time", [charts.grouped_bars(buckets, f"PnL per {label} (UTC)", f"PnL ({settle})")]),
        ("slippage", [charts.slippage_boxes({v.name: v.fills for v in views})]),
        ("risk", [charts.grouped_bars(blocks, "risk blocks by reason (reasons that fired)", "blocked decisions")]),
    ]
    # The book charts share one budget of drawn points, so the page stays a few MB whatever the number
    # of runs (it embedded every run's full depth cloud: 10 MB for two runs, too slow to open under load).
    n = max(len(views), 1)
    for symbol, book in books.items():
        sections.append((f"book {symbol}", [charts.depth_profile_chart(book, levels),
                                            charts.spread_imbalance_chart(book, charts.LINES // 4)]))
    for v in views:
        book = books.get(v.symbol)
        if book is not None and len(book) and len(v.ts):
            part = book[(book.timestamp >= v.ts[0]) & (book.timestamp <= v.ts[-1])]
            sections.append((f"fills {v.name}", [charts.book_fills_chart(
                part, v.fills, levels, f"{v.symbol}: book and fills, {v.name}",
                depth=max(charts.DEPTH // (2 * n), 200), lines=max(charts.LINES // (2 * n), 2_000))]))
    return page(title, sections, subtitle=f"{len(views)} backtest run(s); PnL in {settle}")


def _apart(views: list[BacktestView]) -> bool:
    """Runs whose spans barely overlap (another day, another recording) are drawn on elapsed time from each
    run's start: on one clock axis each would be a sliver at its own end of the axis."""
    spans = [(int(v.ts[0]), int(v.ts[-1])) for v in views if len(v.ts) > 1]
    if len(spans) < 2:
        return False
    lo, hi = max(s[0] for s in spans), min(s[1] for s in spans)
    longest = max(s[1] - s[0] for s in spans)
    return (hi - lo) < 0.5 * longest
