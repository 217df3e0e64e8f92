"""``mode=backtest``: the champion (``mode.model_uri``) or a walk-forward run's out-of-sample signal on
rows it never saw, traded against ``data=``'s recorded book with ``execution=``, ``strategy=``, ``risk=`` and
the instrument of ``data.instruments`` (:func:`l2exp.backtest.run.backtest_book`), tracked under ``tracking=``."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from l2exp.backtest.instruments import Instrument, fx_series, instrument_for
from l2exp.backtest.params import ExecutionParams, from_config, strategy_from_config
from l2exp.backtest.run import backtest_book
from l2exp.backtest.strategies import Strategy
from l2exp.backtest.trades import load_trades
from l2exp.errors import UserError
from l2exp.risk.params import RiskParams
from l2exp.summary import money
from l2exp.tracking import log as tlog
from l2exp.tracking.context import RunContext


def instrument_of(cfg: DictConfig, symbol: str, required: bool = True) -> Instrument:
    """The symbol's instrument from ``data.instruments``; an undeclared symbol is refused (``required``)."""
    raw = cfg.data.get("instruments")
    return instrument_for(OmegaConf.to_container(raw, resolve=True) if raw is not None else None,  # type: ignore[arg-type]
                          symbol, str(cfg.data.get("name", "")), required)


def trading_params(cfg: DictConfig, symbol: str, inst: Instrument | None = None) -> tuple[ExecutionParams, Strategy,
                                                                                          RiskParams]:
    """Execution, strategy and risk for ``symbol``; its tick and lot from its instrument when declared there
    (per symbol), else from ``execution.tick_size`` / ``lot_size`` (the data config's, a number or per symbol)."""
    ex_cfg = OmegaConf.to_container(cfg.execution, resolve=True)
    assert isinstance(ex_cfg, dict)
    tick = ex_cfg.pop("tick_size", None)
    if inst is not None and inst.tick is not None:
        tick = inst.tick
    if isinstance(tick, dict):
        if symbol not in tick:
            raise UserError(f"no tick size for {symbol}", where="execution.tick_size / data.tick_size")
        tick = tick[symbol]
    missing = [k for k in ("maker_fee_bps", "taker_fee_bps") if ex_cfg.get(k) is None]
    if missing:
        raise UserError(f"no venue fees for the backtest: {', '.join('execution.' + k for k in missing)} unset "
                        f"(data={cfg.data.name} has no fees: block)", where=f"conf/data/{cfg.data.name}.yaml",
                        fix="Add the venue's schedule to the data config, in bps of notional (negative = rebate):\n"
                            "  fees: {maker_bps: 1.0, taker_bps: 5.0}   # source: the venue's fee page\n"
                            "or pass them: execution.maker_fee_bps=1.0 execution.taker_fee_bps=5.0")
    lot = ex_cfg.pop("lot_size", 1.0)
    if inst is not None and inst.lot is not None:
        lot = inst.lot
    if isinstance(lot, dict):
        lot = lot.get(symbol, 1.0)
    ex = from_config(ExecutionParams, {"tick_size": float(tick), "lot_size": float(lot), **ex_cfg}, "execution")
    ex.validate()
    st = strategy_from_config(OmegaConf.to_container(cfg.strategy, resolve=True))  # type: ignore[arg-type]
    risk = OmegaConf.to_container(cfg.risk, resolve=True)
    rk = from_config(RiskParams, risk, "risk", extra_allowed=("name",))  # type: ignore[arg-type]
    rk.validate()
    # gates.min_depth is in lots, so one profile means the same on a 1-USD contract and on 0.001 BTC
    rk.gates.min_depth *= float(lot)
    return ex, st, rk


def money_rows(m: dict[str, float], inst: Instrument) -> list[tuple[str, str]]:
    """The money of a run as people read it: quote currency first (each amount at the fx of its own time),
    PnL also in bps of the traded notional, the settlement-currency figures the venue books beside them."""
    q, s = inst.quote, inst.settle
    both = q != s

    def row(label: str, quote: float, settle: float) -> tuple[str, str]:
        return (f"{label} ({q})", money(quote) + (f"   ({money(settle, str(s))})" if both else ""))

    funding = ("funding", "not modelled (a perpetual without a funding source)") if not np.isfinite(m["funding"]) \
        else row(f"funding, {int(m['funding_payments'])} payments", m["funding_quote"], m["funding"])
    return [row("pnl net", m["pnl_net_quote"], m["pnl_net"]),
            ("pnl net per traded notional", f"{m['pnl_bps_of_turnover']:.2f} bps of {money(m['turnover_quote'], q)}"),
            row("fees", m["fees_quote"], m["fees"]), funding,
            row("max drawdown", m["max_drawdown_quote"], m["max_drawdown"])]


def run_backtest(cfg: DictConfig, ctx: RunContext | None = None) -> dict[str, Any]:
    """Trade the model's out-of-sample signal (``mode.signal=model``: rows at or after the model's
    test start; ``mode.signal=oos``: a training run's stitched out-of-fold predictions) on one symbol."""
    import tempfile
    from pathlib import Path

    from l2exp.analysis.backtest_page import BacktestView, run_page
    from l2exp.analysis.plots import equity_figure, fills_figure
    from l2exp.backtest.signals import first_out_of_sample, from_model, from_oos_run, verify_placement
    from l2exp.backtest.trades import trades_coverage
    from l2exp.features.table import choose_symbol
    from l2exp.modes.build import feature_table as build_feature_table
    from l2exp.modes.build import store_with_data as open_store
    from l2exp.summary import console, print_table, write_summary
    from l2exp.tracking.lineage import log_dataset
    from l2exp.tracking.registry import load_bundle
    from l2exp.tracking.runs import tracked_run
    from l2exp.tracking.setup import configure, experiment_name, print_links, run_url

    t0 = time.perf_counter()
    from l2exp.modes.build import run_context, tracking_settings

    configure(tracking_settings(cfg))
    bm = cfg.mode
    uri = str(bm.model_uri)
    bundle = load_bundle(uri, levels_available=int(cfg.levels))
    store = open_store(cfg)
    ft = build_feature_table(cfg, bundle.feature_set, store)
    symbol = choose_symbol(ft.book["symbol"], bm.get("symbol"), str(cfg.data.name), "mode.symbol")
    rows = np.flatnonzero(ft.book["symbol"].to_numpy() == symbol)
    full = store.read(symbols=[symbol])
    if len(full) != len(rows):
        raise UserError("store and feature table disagree on row counts; delete the feature cache",
                        where=str(ft.cache_path))
    source = str(bm.get("signal", "model"))
    if source == "model":
        sig = from_model(bundle, ft, rows, uri)
    elif source == "oos":
        sig = from_oos_run(str(bm.get("model_run") or bundle.run_id), ft, rows, bundle.task, bundle.classes,
                           ft.data_digest)
    else:
        raise UserError(f"mode.signal must be model or oos, got {source!r}", where="mode.signal")
    ts_all = full["timestamp"].to_numpy(np.int64)
    verify_placement(ts_all, sig)
    first = first_out_of_sample(ts_all, sig.start_ts, f"data={cfg.data.name} {symbol}", uri, "mode.model_uri")
    if not np.isfinite(sig.signal[first:]).any():
        raise UserError(f"data={cfg.data.name} {symbol}: no out-of-sample row of {uri} has a signal (feature "
                        "warm-up covers them all)", where="mode.model_uri",
                        fix="Backtest on a longer recording after the model's test start.")
    book = full.iloc[first:].reset_index(drop=True)
    signal, allowed = sig.signal[first:], sig.allowed_from[first:]
    ts = ts_all[first:]
    decided = np.isfinite(signal)
    gap_ms = float(bundle.meta.get("session_gap_ms", bundle.feature_set.params.reset_gap_ms))
    trades = load_trades(OmegaConf.to_container(cfg.data.trades, resolve=True) if cfg.data.get("trades") else None,
                         symbol, store)
    trades = trades[trades.ts >= int(ts[0])].reset_index(drop=True)
    coverage, uncovered = trades_coverage(ts, trades["ts"].to_numpy(np.int64), gap_ms)
    inst = instrument_of(cfg, symbol)
    ex, st, rk = trading_params(cfg, symbol, inst)
    mid = 0.5 * (book["bid_price_1"].to_numpy(float) + book["ask_price_1"].to_numpy(float))
    fx = fx_series(inst, ts, mid, lambda sym: store.read(symbols=[sym]))
    res = backtest_book(book, signal, trades, ex, st, rk, int(cfg.levels), inst, fx)
    # the guard, counted rather than assumed: rows that carried a signal before they were out of sample,
    # and orders submitted before the model's test start
    in_sample = int((decided & (ts < allowed)).sum()) + int((res.orders.submit_ts < sig.start_ts).sum())
    if in_sample:
        raise AssertionError(f"{in_sample} in-sample decisions in an out-of-sample backtest")
    sh = bm.get("sharpe", {}) or {}
    m = res.metrics(float(sh.get("period_s", 60.0)), gap_ms, float(sh.get("seconds_per_year", 365.25 * 86_400)),
                    int(sh.get("min_periods", 20)))
    by_session, by_day = res.pnl_by(gap_ms)
    fallback = ex.queue_model.without_prints
    uncovered_txt = [f"{pd.Timestamp(a, tz='UTC')} .. {pd.Timestamp(b, tz='UTC')}" for a, b in uncovered]
    tags = {"l2exp.model_uri": uri, "l2exp.model_run_id": str(bundle.run_id), "l2exp.symbol": symbol,
            "l2exp.risk": str(cfg.risk.name), "data_digest": ft.data_digest, "l2exp.signal": source,
            "l2exp.out_of_sample": "true", "l2exp.settle_currency": str(inst.settle),
            "l2exp.contract": inst.contract}
    name = f"backtest {symbol} {source} risk={cfg.risk.name}"
    with tracked_run(ctx or run_context(cfg), "backtest", run_name=name, tags=tags) as run:
        log_dataset(store, book, str(cfg.data.name), ft.data_digest, context="backtest")
        tlog.log_metrics({k: float(v) for k, v in m.items() if np.isfinite(v)})
        tlog.log_metrics({f"risk_block_{k}": float(v) for k, v in res.blocks.items()})
        tlog.log_metrics({"n_events": float(len(book) + len(trades)), "trades_coverage": coverage,
                            "in_sample_rows": float(in_sample), "model_test_start_ts": float(sig.start_ts)})
        with tempfile.TemporaryDirectory() as tmp:
            res.fills.to_parquet(Path(tmp) / "fills.parquet")
            res.orders.to_parquet(Path(tmp) / "orders.parquet")
            pd.DataFrame({"ts": res.ts, "mid": res.mid, "position": res.position, "cash": res.cash,
                          "equity": res.equity}).to_parquet(Path(tmp) / "positions.parquet")
            by_session.to_csv(Path(tmp) / "pnl_by_session.csv", index=False)
            by_day.to_csv(Path(tmp) / "pnl_by_day.csv", index=False)
            if res.funding is not None and len(res.funding):
                res.funding.to_csv(Path(tmp) / "funding.csv", index=False)
            tlog.log_artifacts(tmp, "tables")
        tlog.log_figure(equity_figure(res), "plots/equity_drawdown.png")
        tlog.log_figure(fills_figure(book, res, int(cfg.levels)), "plots/fills_over_book.png")
        run_id = run.info.run_id
        view = BacktestView(
            name=BacktestView.label(run_id, str(cfg.risk.name)), symbol=symbol, settle=inst.settle, ts=res.ts,
            equity=res.equity, position=res.position, fills=res.fills, blocks=res.blocks, by_session=by_session,
            metrics=m,
            facts=[("run", run_id), ("model", f"{uri} (run {bundle.run_id})"),
                   ("signal", f"{source}; out of sample from {pd.Timestamp(sig.start_ts, tz='UTC')}, "
                              f"in-sample rows {in_sample}"),
                   ("instrument", f"{symbol}: {inst.contract}, multiplier {inst.multiplier:g}, settles in "
                                  f"{inst.settle}"),
                   ("risk profile", str(cfg.risk.name)), ("trade prints cover", f"{coverage:.1%} of the time")])
        tlog.log_text(run_page(view, book, int(cfg.levels), f"backtest {symbol}: {uri}"), "report.html")
        exp = experiment_name(run.info.experiment_id)
    summary = {"mode": "backtest", "run_id": run_id, "experiment": exp, "model_uri": uri,
               "model_version": bundle.version, "model_run_id": bundle.run_id, "symbol": symbol, "signal": source,
               "signal_run_id": sig.run_id, "model_test_start_ts": sig.start_ts,
               "first_decision_ts": int(ts[np.argmax(decided)]), "in_sample_rows": in_sample,
               "n_events": int(len(book) + len(trades)), "n_snapshots": int(len(book)), "n_trades": int(len(trades)),
               "snapshots_before_test_start_skipped": first, "n_orders": m["n_orders"], "n_fills": m["n_fills"],
               "pnl_net": m["pnl_net"], "settle_currency": inst.settle, "pnl_net_quote": m["pnl_net_quote"],
               "quote_currency": inst.quote, "contract": inst.contract, "multiplier": inst.multiplier,
               "fees": m["fees"], "fees_quote": m["fees_quote"], "max_drawdown_quote": m["max_drawdown_quote"],
               "pnl_bps_of_turnover": m["pnl_bps_of_turnover"],
               "funding": m["funding"] if np.isfinite(m["funding"]) else "not modelled",
               "funding_payments": int(m["funding_payments"]), "pnl_gross": m["pnl_gross"], "sharpe": m["sharpe"],
               "sharpe_period_s": m["sharpe_period_s"], "sharpe_periods": int(m["sharpe_periods"]),
               "max_drawdown": m["max_drawdown"], "time_in_market": m["time_in_market"],
               "fills_by_rule": res.fills_by_rule(), "hit_rate": m["hit_rate"],
               "trades_coverage": coverage, "trades_uncovered": uncovered_txt,
               "queue_fallback": fallback if uncovered else None, "risk_blocks": res.blocks, "metrics": m,
               "pnl_by_session": by_session.assign(start=by_session.start.astype(str),
                                                   end=by_session.end.astype(str)).to_dict("records"),
               "pnl_by_day": by_day.assign(day=by_day.day.astype(str), start=by_day.start.astype(str),
                                           end=by_day.end.astype(str)).to_dict("records"),
               "kill_switch_ts": res.kill_ts, "seconds": round(time.perf_counter() - t0, 2)}
    sharpe_txt = f"{m['sharpe']:.2f} ({int(m['sharpe_periods'])} intervals)" if np.isfinite(m["sharpe"]) else \
        f"undefined ({int(m['sharpe_periods'])} intervals, needs >= {int(sh.get('min_periods', 20))} with variation)"
    print_table(f"backtest: {uri} on {cfg.data.name} {symbol} (risk={cfg.risk.name}), out of sample", [
        ("run", run_id),
        ("traded span", f"{pd.Timestamp(int(ts[0]), tz='UTC')} .. {pd.Timestamp(int(ts[-1]), tz='UTC')} "
                        f"({m['session_seconds']:.0f} s in {int(m['sessions'])} session(s))"),
        ("signal", f"{source} (model test start {pd.Timestamp(sig.start_ts, tz='UTC')}; {first:,} earlier snapshots "
                   f"not traded; in-sample rows {in_sample})"),
        ("events", f"{summary['n_events']:,} ({len(book):,} snapshots, {len(trades):,} trades)"),
        ("orders / fills", f"{m['n_orders']:,} / {m['n_fills']:,} ("
                           + ", ".join(f"{k} {v:,}" for k, v in res.fills_by_rule().items()) + ")"),
        ("instrument", f"{inst.contract}, multiplier {inst.multiplier:g}, settles in {inst.settle}"),
        *money_rows(m, inst),
        (f"sharpe (annualised, {m['sharpe_period_s']:g} s returns in sessions)", sharpe_txt),
        ("hit rate (round trips net of fees)", f"{m['hit_rate']:.3f}"),
        ("avg slippage vs mid (bps)", f"{m['avg_slippage_bps']:.3f}"),
        ("time in market (of session time)", f"{m['time_in_market']:.3f}"),
        ("trade prints cover", f"{coverage:.1%} of the traded time"),
        ("risk blocks", ", ".join(f"{k}: {v}" for k, v in res.blocks.items() if v) or "none"),
        ("kill switch", "fired" if res.kill_ts else "no"),
    ])
    if inst.funding_status == "not modelled":
        console.print(f"[bold yellow]{symbol} is a perpetual swap but its funding is not modelled: pnl_net leaves out "
                      f"the payments every funding time; declare data.instruments.{symbol}.funding (rate_bps or the "
                      "venue's history, docs/backtest.md)[/]")
    if uncovered:
        console.print(f"[bold yellow]no trade prints for {1 - coverage:.1%} of the traded time "
                      f"({'; '.join(uncovered_txt[:3])}{' ...' if len(uncovered_txt) > 3 else ''}): there "
                      f"{fallback}; passive fills in that span are less certain[/]")
    print_links([("report", run_url(run_id, "report.html")), ("run", run_url(run_id))])
    write_summary(summary)
    return summary
