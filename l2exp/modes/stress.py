"""``mode=stress``: the seven L2 stress scenarios of :mod:`l2exp.analysis.stress` on ``data=``'s recording with
the champion, ``execution=`` and ``risk=``; a pass/fail table in MLflow (exit 2 if any fails).

As the other trading modes: :func:`stress_spec` (the only reader of the config) -> :func:`prepare` (the longest
session of one symbol, sizes in money, the signal) -> :func:`run` (every scenario through the backtest engine)
-> :func:`record` (MLflow) -> :func:`report` (console, ``summary.json``, the exit code)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from l2exp.analysis.stress import _html, momentum_signal, run_scenario, scaled_sizes
from l2exp.backtest.instruments import fx_series
from l2exp.errors import UserError
from l2exp.tracking import log as tlog


@dataclass
class StressSpec:
    """What to stress (``conf/stress``, ``risk=``, ``execution=``), as objects.

    Args:
        data_name / levels: the ``data=`` name and canonical depth.
        symbol: the symbol asked for (None: the data's only one).
        signal: ``long`` | ``momentum`` | ``model`` (``model_uri``).
        size_notional: the base position's worth in quote currency (None: the profile's sizes).
        gap_ms: the session gap (the suite runs on the longest session).
        scenarios: name -> a built scenario object.
        trading: symbol -> ``TradingSpec``.
        fail_exit: exit 2 when a scenario fails.
    """

    data_name: str
    levels: int
    symbol: str | None
    signal: str
    model_uri: str | None
    size_notional: float | None
    gap_ms: float
    scenarios: dict[str, Any]
    trading: Any
    fail_exit: bool


@dataclass
class StressInputs:
    trading: Any  # TradingSpec, sizes scaled
    book: pd.DataFrame
    scale: float
    signal_fn: Any
    fx_of: Any


def stress_spec(cfg: DictConfig) -> StressSpec:
    from l2exp.config import instantiate
    from l2exp.modes.trading import trading_spec

    sc = cfg.stress
    scenarios = {}
    for name, node in sc.scenarios.items():
        built = instantiate(node)
        built.name = str(name)
        scenarios[str(name)] = built
    return StressSpec(data_name=str(cfg.data.name), levels=int(cfg.levels), symbol=sc.get("symbol"),
                      signal=str(sc.signal), model_uri=str(sc.model_uri) if sc.get("model_uri") else None,
                      size_notional=float(sc.size_notional) if sc.get("size_notional") else None,
                      gap_ms=float(cfg.features.params.get("reset_gap_ms", 300_000)), scenarios=scenarios,
                      trading=lambda sym: trading_spec(cfg, sym), fail_exit=bool(cfg.mode.get("fail_exit", True)))


def prepare(spec: StressSpec, store: Any) -> StressInputs:
    """One contiguous session (the longest): a position held over a days-long gap between recordings is gap
    risk that no intraday limit can bound, and would mask what the scenarios test."""
    from l2exp.backtest.signals import model_signal
    from l2exp.features.table import choose_symbol
    from l2exp.sessions import sessions

    symbol = choose_symbol(store.read(columns=[])["symbol"], spec.symbol, spec.data_name, "stress.symbol")
    book = store.read(symbols=[symbol]).reset_index(drop=True)
    longest = max(sessions(book.timestamp.to_numpy(), spec.gap_ms), key=lambda sl: sl.stop - sl.start)
    book = book.iloc[longest].reset_index(drop=True)
    t = spec.trading(symbol)
    inst = t.instrument

    def fx_of(b: pd.DataFrame) -> np.ndarray:
        mid = 0.5 * (b.bid_price_1.to_numpy(float) + b.ask_price_1.to_numpy(float))
        return fx_series(inst, b.timestamp.to_numpy(np.int64), mid, lambda sym: store.read(symbols=[sym]))

    st, rk, scale = scaled_sizes(spec.size_notional, inst, book, fx_of(book[:1]), t.strategy, t.risk,
                                 t.execution.lot_size)
    bundle = None
    if spec.signal == "model":
        from l2exp.tracking.registry import load_bundle

        if not spec.model_uri:
            raise UserError("stress.signal=model needs a model", where="stress.model_uri")
        bundle = load_bundle(spec.model_uri, levels_available=spec.levels)

    def signal_fn(b: pd.DataFrame, override: str | None) -> np.ndarray:
        kind = override or spec.signal
        if kind == "long":
            return np.ones(len(b))
        if kind == "momentum":
            return momentum_signal(b)
        if bundle is None:
            raise UserError("stress.signal=model needs a model", where="stress.model_uri")
        res = bundle.feature_set.compute(b, spec.levels)
        sig = np.full(len(b), np.nan)
        if res.ready.any():
            sig[res.ready] = model_signal(bundle.predict_proba(res.features[res.ready]), bundle.task)
        return sig

    return StressInputs(replace(t, strategy=st, risk=rk), book, scale, signal_fn, fx_of)


def run(spec: StressSpec, p: StressInputs) -> list[dict[str, Any]]:
    t = p.trading
    return [run_scenario(sc, p.book, p.signal_fn, spec.levels, t.execution.tick_size, t.execution, t.strategy, t.risk,
                         t.instrument, p.fx_of) for sc in spec.scenarios.values()]


def table_of(results: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{"scenario": r["scenario"], "check": check, "passed": c["passed"], "figure": c["figure"],
             "limit": c["limit"], "pnl_net": r["pnl_net"], "kill_switch": r["kill_switch"]}
            for r in results for check, c in r["checks"].items()]
    return pd.DataFrame(rows)


def record(spec: StressSpec, p: StressInputs, results: list[dict[str, Any]], ctx: Any) -> str:
    import json

    from l2exp.tracking.runs import tracked_run

    t = p.trading
    passed = all(r["passed"] for r in results)
    table = table_of(results)
    tags = {"l2exp.symbol": t.symbol, "l2exp.risk": t.risk_name, "l2exp.stress_passed": str(passed)}
    name = f"stress {spec.data_name} {t.symbol} risk={t.risk_name}"
    with tracked_run(ctx, "stress", run_name=name, tags=tags) as mlrun:
        tlog.log_text(table.to_csv(index=False), "stress_results.csv")
        tlog.log_text(_html(table, t.symbol, t.risk_name, passed), "stress_results.html")
        tlog.log_text(json.dumps(results, indent=1, default=str), "stress_results.json")
        tlog.log_metrics({f"passed_{r['scenario']}": float(r["passed"]) for r in results} | {"passed": float(passed)})
        return mlrun.info.run_id


def report(spec: StressSpec, p: StressInputs, results: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    from l2exp.summary import console, print_table, write_summary
    from l2exp.tracking.setup import print_links, run_url

    t = p.trading
    passed = all(r["passed"] for r in results)
    inst, rk = t.instrument, t.risk
    summary = {"mode": "stress", "run_id": run_id, "symbol": t.symbol, "risk": t.risk_name, "passed": passed,
               "base_size": t.strategy.base_size, "unit_notional": rk.sizing.unit_notional,
               "max_position": rk.limits.max_position, "size_scale": p.scale,
               "limits_currency": inst.quote if rk.currency == "quote" else inst.settle, "scenarios": results}
    print_table(f"stress: {spec.data_name} {t.symbol}, risk={t.risk_name}: {'PASSED' if passed else 'FAILED'}", [
        (r["scenario"], ("pass: " if r["passed"] else "FAIL: ") + "; ".join(_check_text(k, v) for k, v in sorted(
            r["checks"].items(), key=lambda kv: bool(kv[1]["passed"])))) for r in results])
    write_summary(summary)
    print_links([("results", run_url(run_id))])
    if not passed and spec.fail_exit:
        failed = [f"{r['scenario']} ({'; '.join(_check_text(k, v) for k, v in r['checks'].items() if not v['passed'])})"
                  for r in results if not r["passed"]]
        raise UserError(f"stress suite failed: {', '.join(failed)}", where=f"MLflow run {run_id}, stress_results.html",
                        fix="Read the failed checks; tighten the risk profile (risk=...) before going live.")
    console.print("[bold green]every stress expectation held[/]")
    return summary


def run_stress(cfg: DictConfig) -> dict[str, Any]:
    """The suite on ``data=`` (one symbol), the configured risk profile and execution."""
    from l2exp.modes.build import run_context, store_with_data, tracking_settings
    from l2exp.tracking.setup import configure

    spec = stress_spec(cfg)
    configure(tracking_settings(cfg))
    p = prepare(spec, store_with_data(cfg))
    results = run(spec, p)
    return report(spec, p, results, record(spec, p, results, run_context(cfg)))


def _check_text(name: str, c: dict[str, Any]) -> str:
    """``ok max_drawdown 412.3 (bound <= 1,000)`` / ``FAILED ...``: which check, its figure, its bound -- a FAIL
    row used to list every check alike, so which one failed had to be worked out from the numbers."""
    from l2exp.summary import money

    fig = c["figure"]
    figure = money(float(fig)) if isinstance(fig, (int, float)) else str(fig)
    return f"{'ok' if c['passed'] else 'FAILED'} {name} {figure} (bound {c['limit']})"
