"""``mode=backtest``: the champion (or any) model's signal traded against the recorded book.

:func:`backtest_book` is the pure core (book + signal + trades + parameters -> result), used by
the tests with hand-built books and by the stress suite; :func:`run_backtest` wires it to the
registry, the feature table, the trades file and MLflow.
"""

from __future__ import annotations

import time
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from l2exp.backtest.engine import new_state, simulate
from l2exp.backtest.layout import N_COUNTERS, N_FILL_COLS, N_ORDER_COLS
from l2exp.backtest.params import ExecutionParams, RiskParams, StrategyParams, pack
from l2exp.backtest.results import BacktestResult, blocks_dict, tables
from l2exp.backtest.trades import load_trades
from l2exp.errors import UserError
from l2exp.schema import SIDE_FIELDS, level_columns


def backtest_book(book: pd.DataFrame, signal: np.ndarray, trades: pd.DataFrame | None, ex: ExecutionParams,
                  st: StrategyParams, rk: RiskParams, levels: int) -> BacktestResult:
    """Run the event loop over one instrument's time-ordered snapshots."""
    if book["symbol"].nunique() > 1:
        raise ValueError("backtest_book takes one symbol")
    p = pack(ex, st, rk)
    n = len(book)
    mats = [np.ascontiguousarray(book[level_columns(f, levels)].to_numpy(np.float64)) for f in SIDE_FIELDS]
    ts = book["timestamp"].to_numpy(np.int64)
    tr = trades if trades is not None else pd.DataFrame({"ts": [], "price": [], "size": [], "side": []})
    cap_orders = 4 * n + 16
    orders = np.zeros((cap_orders, N_ORDER_COLS))
    fills = np.zeros((cap_orders * min(levels, 10) + 16, N_FILL_COLS))
    position, cash, equity = np.zeros(n), np.zeros(n), np.zeros(n)
    blocks = np.zeros(16)
    counters = np.zeros(N_COUNTERS)
    t0 = int(ts[0]) if n else 0
    simulate((ts - t0).astype(np.float64), *mats, np.asarray(signal, dtype=np.float64),
             (tr["ts"].to_numpy(np.int64) - t0).astype(np.float64), tr["price"].to_numpy(np.float64),
             tr["size"].to_numpy(np.float64), tr["side"].to_numpy(np.float64), p,
             new_state(float(t0 % 86_400_000_000_000)), orders, fills, position, cash, equity, blocks, counters)
    fdf, odf = tables(fills, int(counters[1]), orders, int(counters[0]), t0)
    mid = 0.5 * (mats[0][:, 0] + mats[2][:, 0])
    return BacktestResult(str(book["symbol"].iloc[0]) if n else "", ts, mid, position, cash, equity, fdf, odf,
                          blocks_dict(blocks), counters)


def model_signal(proba: np.ndarray, task: str) -> np.ndarray:
    """Classification: P(up) - P(down); binary: 2 P(up) - 1; regression: the predicted move (bps)."""
    if task == "classification":
        return proba[:, 2] - proba[:, 0]
    if task == "binary":
        return 2 * proba[:, 1] - 1
    return proba[:, 0]


def _params(cfg: DictConfig, symbol: str) -> tuple[ExecutionParams, StrategyParams, RiskParams]:
    ex_cfg = OmegaConf.to_container(cfg.execution, resolve=True)
    assert isinstance(ex_cfg, dict)
    tick = ex_cfg.pop("tick_size", None)
    if isinstance(tick, dict):
        if symbol not in tick:
            raise UserError(f"no tick size for {symbol}", where="execution.tick_size / data.tick_size")
        tick = tick[symbol]
    lot = ex_cfg.pop("lot_size", 1.0)
    if isinstance(lot, dict):
        lot = lot.get(symbol, 1.0)
    ex = ExecutionParams(tick_size=float(tick), lot_size=float(lot), **ex_cfg)
    st = StrategyParams(**OmegaConf.to_container(cfg.strategy, resolve=True))  # type: ignore[arg-type]
    rk = RiskParams(**OmegaConf.to_container(cfg.risk.limits, resolve=True))  # type: ignore[arg-type]
    return ex, st, rk


def run_backtest(cfg: DictConfig) -> dict[str, Any]:
    from l2exp.analysis.plots import equity_figure, fills_figure
    from l2exp.features.table import build_feature_table, choose_symbol, open_store
    from l2exp.summary import console, print_table, write_summary
    from l2exp.tracking.lineage import log_dataset
    from l2exp.tracking.registry import load_bundle
    from l2exp.tracking.runs import tracked_run
    from l2exp.tracking.setup import configure

    t0 = time.perf_counter()
    configure(cfg)
    uri = str(cfg.mode.model_uri)
    bundle = load_bundle(uri, levels_available=int(cfg.levels))
    store = open_store(cfg)
    ft = build_feature_table(cfg, bundle.feature_set, store)
    symbol = choose_symbol(ft.book["symbol"], cfg.mode.get("symbol"), str(cfg.data.name), "mode.symbol")
    rows = np.flatnonzero(ft.book["symbol"].to_numpy() == symbol)
    full = store.read(symbols=[symbol])
    if len(full) != len(rows):
        raise UserError("store and feature table disagree on row counts; delete the feature cache",
                        where=str(ft.cache_path))
    ready = ft.ready.to_numpy()[rows]
    X = ft.features.iloc[rows]
    signal = np.full(len(rows), np.nan)
    if ready.any():
        signal[ready] = model_signal(bundle.predict_proba(X[ready]), bundle.task)
    trades = load_trades(OmegaConf.to_container(cfg.data.trades, resolve=True) if cfg.data.get("trades") else None,
                         symbol)
    ex, st, rk = _params(cfg, symbol)
    res = backtest_book(full, signal, trades, ex, st, rk, int(cfg.levels))
    m = res.metrics()
    tags = {"l2exp.model_uri": uri, "l2exp.model_run_id": str(bundle.run_id), "l2exp.symbol": symbol,
            "l2exp.risk": str(cfg.risk.name), "data_digest": ft.data_digest}
    with tracked_run(cfg, "backtest", run_name=f"backtest {symbol} {cfg.risk.name}", tags=tags) as run:
        log_dataset(store, full, str(cfg.data.name), ft.data_digest, context="backtest")
        mlflow.log_metrics({k: float(v) for k, v in m.items() if np.isfinite(v)})
        mlflow.log_metrics({f"risk_block_{k}": float(v) for k, v in res.blocks.items()})
        mlflow.log_metrics({"n_events": float(len(full) + len(trades))})
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            res.fills.to_parquet(Path(tmp) / "fills.parquet")
            res.orders.to_parquet(Path(tmp) / "orders.parquet")
            pd.DataFrame({"ts": res.ts, "mid": res.mid, "position": res.position, "cash": res.cash,
                          "equity": res.equity}).to_parquet(Path(tmp) / "positions.parquet")
            mlflow.log_artifacts(tmp, "tables")
        mlflow.log_figure(equity_figure(res), "plots/equity_drawdown.png")
        mlflow.log_figure(fills_figure(full, res, int(cfg.levels)), "plots/fills_over_book.png")
        run_id = run.info.run_id
    summary = {"mode": "backtest", "run_id": run_id, "model_uri": uri, "model_version": bundle.version,
               "model_run_id": bundle.run_id, "symbol": symbol, "n_events": int(len(full) + len(trades)),
               "n_snapshots": int(len(full)), "n_trades": int(len(trades)), "n_orders": m["n_orders"],
               "n_fills": m["n_fills"], "pnl_net": m["pnl_net"], "fees": m["fees"], "sharpe": m["sharpe"],
               "max_drawdown": m["max_drawdown"], "risk_blocks": res.blocks, "metrics": m,
               "kill_switch_ts": res.kill_ts, "seconds": round(time.perf_counter() - t0, 2)}
    print_table(f"backtest: {uri} on {cfg.data.name} {symbol} (risk={cfg.risk.name})", [
        ("run", run_id), ("events", f"{summary['n_events']:,} ({len(full):,} snapshots, {len(trades):,} trades)"),
        ("orders / fills", f"{m['n_orders']:,} / {m['n_fills']:,}"),
        ("pnl net / fees", f"{m['pnl_net']:.4f} / {m['fees']:.4f}"), ("sharpe (annualised)", f"{m['sharpe']:.2f}"),
        ("max drawdown", f"{m['max_drawdown']:.4f}"), ("hit rate", f"{m['hit_rate']:.3f}"),
        ("avg slippage vs mid (bps)", f"{m['avg_slippage_bps']:.3f}"), ("time in market", f"{m['time_in_market']:.3f}"),
        ("risk blocks", ", ".join(f"{k}: {v}" for k, v in res.blocks.items() if v) or "none"),
        ("kill switch", "fired" if res.kill_ts else "no"),
    ])
    import os

    from l2exp.tracking.runs import EXPERIMENT_ENV

    exp = f"{cfg.tracking.experiment_prefix}-{os.environ.get(EXPERIMENT_ENV, 'backtest')}"
    console.print(f"report in MLflow run {run_id} (experiment {exp})")
    write_summary(summary)
    return summary
