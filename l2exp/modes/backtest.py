"""``mode=backtest``: the champion (``mode.model_uri``) or a walk-forward run's out-of-sample signal on
rows it never saw, traded against ``data=``'s recorded book with ``execution=``, ``strategy=``, ``risk=`` and
the instrument of ``data.instruments`` (:func:`l2exp.backtest.run.backtest_book`), tracked under ``tracking=``.

Four steps over typed objects (:func:`backtest_spec` is the only reader of the config): :func:`prepare` (model,
store, feature table -> the book, signal, prints and fx of the traded span), :func:`run` (the event loop),
:func:`record` (MLflow: metrics, tables, plots, report page) and :func:`report` (console, ``summary.json``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.markup import escape

from l2exp.backtest.instruments import fx_series
from l2exp.backtest.results import BacktestResult
from l2exp.backtest.run import backtest_book
from l2exp.backtest.trades import load_trades
from l2exp.errors import UserError
from l2exp.modes.trading import TradingSpec, money_rows, save_tables, say_funding, trading_spec
from l2exp.tracking import log as tlog
from l2exp.tracking.context import RunContext


@dataclass
class Sharpe:
    """How Sharpe is measured (``mode.sharpe``; :func:`l2exp.backtest.results.sharpe_ratio`)."""

    period_s: float = 60.0
    seconds_per_year: float = 365.25 * 86_400
    min_periods: int = 20


@dataclass
class BacktestSpec:
    """What to backtest (``conf/mode/backtest.yaml`` and the groups it reads), as objects.

    Args:
        data_name / levels: the ``data=`` name and canonical depth.
        model_uri: the model (``models:/<name>@champion`` by default).
        signal: ``model`` (the model's predictions on its test rows) or ``oos`` (a training run's stitched
            out-of-fold predictions, ``model_run``; default the model's own run).
        symbol: the symbol asked for (None: the data's only one).
        trades: the trade-print source of ``data.trades`` (None: none).
        trading: ``TradingSpec`` of a symbol (built once the symbol is known).
        sharpe: how Sharpe is measured.
    """

    data_name: str
    levels: int
    model_uri: str
    signal: str
    model_run: str | None
    symbol: str | None
    trades: dict[str, Any] | None
    trading: Any  # Callable[[str], TradingSpec]
    sharpe: Sharpe


@dataclass
class Prepared:
    """The traded span of one symbol: its book, signal, prints, fx, and what the guards need."""

    trading: TradingSpec
    book: pd.DataFrame
    signal: np.ndarray
    allowed: np.ndarray
    ts: np.ndarray
    trades: pd.DataFrame
    fx: np.ndarray
    sig: Any  # backtest.signals.TradedSignal
    first: int  # snapshots before the model's test start, not traded
    gap_ms: float
    coverage: float
    uncovered: list[tuple[int, int]]
    bundle: Any
    data_digest: str
    store: Any


def backtest_spec(cfg: DictConfig) -> BacktestSpec:
    bm = cfg.mode
    sh = bm.get("sharpe", {}) or {}
    source = str(bm.get("signal", "model"))
    if source not in ("model", "oos"):
        raise UserError(f"mode.signal must be model or oos, got {source!r}", where="mode.signal")
    return BacktestSpec(
        data_name=str(cfg.data.name), levels=int(cfg.levels), model_uri=str(bm.model_uri), signal=source,
        model_run=str(bm.get("model_run")) if bm.get("model_run") else None, symbol=bm.get("symbol"),
        trades=OmegaConf.to_container(cfg.data.trades, resolve=True) if cfg.data.get("trades") else None,
        trading=lambda sym: trading_spec(cfg, sym),
        sharpe=Sharpe(float(sh.get("period_s", 60.0)), float(sh.get("seconds_per_year", 365.25 * 86_400)),
                      int(sh.get("min_periods", 20))))


def prepare(spec: BacktestSpec, bundle: Any, store: Any, ft: Any) -> Prepared:
    """The symbol's out-of-sample span: every prediction on the snapshot it was made for, no row the model
    saw, the prints from the span's start, the instrument's fx."""
    from l2exp.backtest.signals import first_out_of_sample, from_model, from_oos_run, verify_placement
    from l2exp.backtest.trades import trades_coverage
    from l2exp.features.table import choose_symbol

    symbol = choose_symbol(ft.book["symbol"], spec.symbol, spec.data_name, "mode.symbol")
    rows = np.flatnonzero(ft.book["symbol"].to_numpy() == symbol)
    full = store.read(symbols=[symbol])
    if len(full) != len(rows):
        raise UserError("store and feature table disagree on row counts; delete the feature cache",
                        where=str(ft.cache_path))
    uri = spec.model_uri
    if spec.signal == "model":
        sig = from_model(bundle, ft, rows, uri)
    else:
        sig = from_oos_run(spec.model_run or str(bundle.run_id), ft, rows, bundle.task, bundle.classes,
                           ft.data_digest)
    ts_all = full["timestamp"].to_numpy(np.int64)
    verify_placement(ts_all, sig)
    first = first_out_of_sample(ts_all, sig.start_ts, f"data={spec.data_name} {symbol}", uri, "mode.model_uri")
    if not np.isfinite(sig.signal[first:]).any():
        raise UserError(f"data={spec.data_name} {symbol}: no out-of-sample row of {uri} has a signal (feature "
                        "warm-up covers them all)", where="mode.model_uri",
                        fix="Backtest on a longer recording after the model's test start.")
    book = full.iloc[first:].reset_index(drop=True)
    ts = ts_all[first:]
    gap_ms = float(bundle.meta.get("session_gap_ms", bundle.feature_set.params.reset_gap_ms))
    trades = load_trades(spec.trades, symbol, store)
    trades = trades[trades.ts >= int(ts[0])].reset_index(drop=True)
    coverage, uncovered = trades_coverage(ts, trades["ts"].to_numpy(np.int64), gap_ms)
    trading = spec.trading(symbol)
    mid = 0.5 * (book["bid_price_1"].to_numpy(float) + book["ask_price_1"].to_numpy(float))
    fx = fx_series(trading.instrument, ts, mid, lambda sym: store.read(symbols=[sym]))
    return Prepared(trading, book, sig.signal[first:], sig.allowed_from[first:], ts, trades, fx, sig, first, gap_ms,
                    coverage, uncovered, bundle, ft.data_digest, store)


def run(spec: BacktestSpec, p: Prepared) -> BacktestResult:
    """The event loop over the prepared span; the out-of-sample guard counted, not assumed."""
    t = p.trading
    res = backtest_book(p.book, p.signal, p.trades, t.execution, t.strategy, t.risk, spec.levels, t.instrument, p.fx)
    in_sample = int((np.isfinite(p.signal) & (p.ts < p.allowed)).sum()) + \
        int((res.orders.submit_ts < p.sig.start_ts).sum())
    if in_sample:
        raise AssertionError(f"{in_sample} in-sample decisions in an out-of-sample backtest")
    return res


def record(spec: BacktestSpec, p: Prepared, res: BacktestResult, ctx: RunContext) -> tuple[str, str, dict, Any, Any]:
    """Everything into one MLflow run: lineage, metrics, tables, plots and the report page. Returns (run id,
    experiment, metrics, per-session table, per-day table)."""
    import tempfile
    from pathlib import Path

    from l2exp.analysis.backtest_page import BacktestView, run_page
    from l2exp.analysis.plots import equity_figure, fills_figure
    from l2exp.tracking.lineage import log_dataset
    from l2exp.tracking.runs import tracked_run
    from l2exp.tracking.setup import experiment_name

    t, inst, sh = p.trading, p.trading.instrument, spec.sharpe
    m = res.metrics(sh.period_s, p.gap_ms, sh.seconds_per_year, sh.min_periods)
    by_session, by_day = res.pnl_by(p.gap_ms)
    tags = {"l2exp.model_uri": spec.model_uri, "l2exp.model_run_id": str(p.bundle.run_id), "l2exp.symbol": t.symbol,
            "l2exp.risk": t.risk_name, "data_digest": p.data_digest, "l2exp.signal": spec.signal,
            "l2exp.out_of_sample": "true", "l2exp.settle_currency": str(inst.settle), "l2exp.contract": inst.contract}
    name = f"backtest {t.symbol} {spec.signal} risk={t.risk_name}"
    with tracked_run(ctx, "backtest", run_name=name, tags=tags) as mlrun:
        log_dataset(p.store, p.book, spec.data_name, p.data_digest, context="backtest")
        tlog.log_metrics({k: float(v) for k, v in m.items() if np.isfinite(v)})
        tlog.log_metrics({f"risk_block_{k}": float(v) for k, v in res.blocks.items()})
        tlog.log_metrics({"n_events": float(len(p.book) + len(p.trades)), "trades_coverage": p.coverage,
                          "in_sample_rows": 0.0, "model_test_start_ts": float(p.sig.start_ts)})
        with tempfile.TemporaryDirectory() as tmp:
            save_tables(Path(tmp), res.fills, res.orders)
            pd.DataFrame({"ts": res.ts, "mid": res.mid, "position": res.position, "cash": res.cash,
                          "equity": res.equity}).to_parquet(Path(tmp) / "positions.parquet")
            by_session.to_csv(Path(tmp) / "pnl_by_session.csv", index=False)
            by_day.to_csv(Path(tmp) / "pnl_by_day.csv", index=False)
            if res.funding is not None and len(res.funding):
                res.funding.to_csv(Path(tmp) / "funding.csv", index=False)
            tlog.log_artifacts(tmp, "tables")
        tlog.log_figure(equity_figure(res), "plots/equity_drawdown.png")
        tlog.log_figure(fills_figure(p.book, res, spec.levels), "plots/fills_over_book.png")
        run_id = mlrun.info.run_id
        view = BacktestView(
            name=BacktestView.label(run_id, t.risk_name), symbol=t.symbol, settle=inst.settle, ts=res.ts,
            equity=res.equity, position=res.position, fills=res.fills, blocks=res.blocks, by_session=by_session,
            metrics=m,
            facts=[("run", run_id), ("model", f"{spec.model_uri} (run {p.bundle.run_id})"),
                   ("signal", f"{spec.signal}; out of sample from {pd.Timestamp(p.sig.start_ts, tz='UTC')}, "
                              "in-sample rows 0"),
                   ("instrument", f"{t.symbol}: {inst.contract}, multiplier {inst.multiplier:g}, settles in "
                                  f"{inst.settle}"),
                   ("risk profile", t.risk_name), ("trade prints cover", f"{p.coverage:.1%} of the time")])
        tlog.log_text(run_page(view, p.book, spec.levels, f"backtest {t.symbol}: {spec.model_uri}"), "report.html")
        exp = experiment_name(mlrun.info.experiment_id)
    return run_id, exp, m, by_session, by_day


def report(spec: BacktestSpec, p: Prepared, res: BacktestResult, run_id: str, exp: str, m: dict, by_session: Any,
           by_day: Any, seconds: float) -> dict[str, Any]:
    """The console table, the notices and ``summary.json``; returns the summary."""
    from l2exp.summary import console, print_table, write_summary
    from l2exp.tracking.setup import print_links, run_url

    t, inst, sh, uri = p.trading, p.trading.instrument, spec.sharpe, spec.model_uri
    ts, book, decided = p.ts, p.book, np.isfinite(p.signal)
    fallback = t.execution.queue_model.without_prints
    uncovered_txt = [f"{pd.Timestamp(a, tz='UTC')} .. {pd.Timestamp(b, tz='UTC')}" for a, b in p.uncovered]
    summary = {"mode": "backtest", "run_id": run_id, "experiment": exp, "model_uri": uri,
               "model_version": p.bundle.version, "model_run_id": p.bundle.run_id, "symbol": t.symbol,
               "signal": spec.signal, "signal_run_id": p.sig.run_id, "model_test_start_ts": p.sig.start_ts,
               "first_decision_ts": int(ts[np.argmax(decided)]), "in_sample_rows": 0,
               "n_events": int(len(book) + len(p.trades)), "n_snapshots": int(len(book)),
               "n_trades": int(len(p.trades)), "snapshots_before_test_start_skipped": p.first,
               "n_orders": m["n_orders"], "n_fills": m["n_fills"],
               "pnl_net": m["pnl_net"], "settle_currency": inst.settle, "pnl_net_quote": m["pnl_net_quote"],
               "quote_currency": inst.quote, "contract": inst.contract, "multiplier": inst.multiplier,
               "fees": m["fees"], "fees_quote": m["fees_quote"], "max_drawdown_quote": m["max_drawdown_quote"],
               "pnl_bps_of_turnover": m["pnl_bps_of_turnover"],
               "funding": m["funding"] if np.isfinite(m["funding"]) else "not modelled",
               "funding_payments": int(m["funding_payments"]), "pnl_gross": m["pnl_gross"], "sharpe": m["sharpe"],
               "sharpe_period_s": m["sharpe_period_s"], "sharpe_periods": int(m["sharpe_periods"]),
               "max_drawdown": m["max_drawdown"], "time_in_market": m["time_in_market"],
               "fills_by_rule": res.fills_by_rule(), "hit_rate": m["hit_rate"],
               "trades_coverage": p.coverage, "trades_uncovered": uncovered_txt,
               "queue_fallback": fallback if p.uncovered else None, "risk_blocks": res.blocks, "metrics": m,
               "pnl_by_session": by_session.assign(start=by_session.start.astype(str),
                                                   end=by_session.end.astype(str)).to_dict("records"),
               "pnl_by_day": by_day.assign(day=by_day.day.astype(str), start=by_day.start.astype(str),
                                           end=by_day.end.astype(str)).to_dict("records"),
               "kill_switch_ts": res.kill_ts, "seconds": round(seconds, 2)}
    sharpe_txt = f"{m['sharpe']:.2f} ({int(m['sharpe_periods'])} intervals)" if np.isfinite(m["sharpe"]) else \
        f"undefined ({int(m['sharpe_periods'])} intervals, needs >= {sh.min_periods} with variation)"
    print_table(f"backtest: {uri} on {spec.data_name} {t.symbol} (risk={t.risk_name}), out of sample", [
        ("run", run_id),
        ("traded span", f"{pd.Timestamp(int(ts[0]), tz='UTC')} .. {pd.Timestamp(int(ts[-1]), tz='UTC')} "
                        f"({m['session_seconds']:.0f} s in {int(m['sessions'])} session(s))"),
        ("signal", f"{spec.signal} (model test start {pd.Timestamp(p.sig.start_ts, tz='UTC')}; {p.first:,} earlier "
                   "snapshots not traded; in-sample rows 0)"),
        ("events", f"{summary['n_events']:,} ({len(book):,} snapshots, {len(p.trades):,} trades)"),
        ("orders / fills", f"{m['n_orders']:,} / {m['n_fills']:,} ("
                           + ", ".join(f"{k} {v:,}" for k, v in res.fills_by_rule().items()) + ")"),
        ("instrument", f"{inst.contract}, multiplier {inst.multiplier:g}, settles in {inst.settle}"),
        *money_rows(m, inst),
        (f"sharpe (annualised, {m['sharpe_period_s']:g} s returns in sessions)", sharpe_txt),
        ("hit rate (round trips net of fees)", f"{m['hit_rate']:.3f}"),
        ("avg slippage vs mid (bps)", f"{m['avg_slippage_bps']:.3f}"),
        ("time in market (of session time)", f"{m['time_in_market']:.3f}"),
        ("trade prints cover", f"{p.coverage:.1%} of the traded time"),
        ("risk blocks", ", ".join(f"{k}: {v}" for k, v in res.blocks.items() if v) or "none"),
        ("kill switch", "fired" if res.kill_ts else "no"),
    ])
    say_funding(inst)
    if p.uncovered:
        console.print(f"[bold yellow]no trade prints for {1 - p.coverage:.1%} of the traded time "
                      f"({escape('; '.join(uncovered_txt[:3]))}{' ...' if len(uncovered_txt) > 3 else ''}): there "
                      f"{fallback}; passive fills in that span are less certain[/]")
    print_links([("report", run_url(run_id, "report.html")), ("run", run_url(run_id))])
    write_summary(summary)
    return summary


def run_backtest(cfg: DictConfig, ctx: RunContext | None = None) -> dict[str, Any]:
    """Trade the model's out-of-sample signal (``mode.signal=model``: rows at or after the model's
    test start; ``mode.signal=oos``: a training run's stitched out-of-fold predictions) on one symbol."""
    from l2exp.modes.build import feature_table, run_context, store_with_data, tracking_settings
    from l2exp.tracking.registry import load_bundle
    from l2exp.tracking.setup import configure

    t0 = time.perf_counter()
    spec = backtest_spec(cfg)
    configure(tracking_settings(cfg))
    bundle = load_bundle(spec.model_uri, levels_available=spec.levels)
    store = store_with_data(cfg)
    p = prepare(spec, bundle, store, feature_table(cfg, bundle.feature_set, store))
    res = run(spec, p)
    run_id, exp, m, by_session, by_day = record(spec, p, res, ctx or run_context(cfg))
    return report(spec, p, res, run_id, exp, m, by_session, by_day, time.perf_counter() - t0)
