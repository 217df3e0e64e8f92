"""``mode=stress``: the seven L2 stress scenarios of :mod:`l2exp.analysis.stress` on ``data=``'s recording with
the champion, ``execution=`` and ``risk=``; a pass/fail table in MLflow (exit 2 if any fails)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from l2exp.analysis.stress import _html, momentum_signal, run_scenario, scaled_sizes
from l2exp.backtest.instruments import fx_series
from l2exp.tracking import log as tlog


def run_stress(cfg: Any) -> dict[str, Any]:
    """The suite on ``data=`` (one symbol), the configured risk profile and execution."""
    import json

    from l2exp.backtest.signals import model_signal
    from l2exp.config import instantiate
    from l2exp.errors import UserError
    from l2exp.features.table import choose_symbol
    from l2exp.modes.build import run_context, tracking_settings
    from l2exp.modes.build import store_with_data as open_store
    from l2exp.modes.trading import instrument_of, trading_params
    from l2exp.summary import console, print_table, write_summary
    from l2exp.tracking.runs import tracked_run
    from l2exp.tracking.setup import configure

    configure(tracking_settings(cfg))
    levels = int(cfg.levels)
    sc_cfg = cfg.stress
    store = open_store(cfg)
    symbol = choose_symbol(store.read(columns=[])["symbol"], sc_cfg.get("symbol"), str(cfg.data.name),
                           "stress.symbol")
    book = store.read(symbols=[symbol]).reset_index(drop=True)
    # one contiguous session (the longest): a position held over a days-long gap between recordings
    # is gap risk that no intraday limit can bound, and would mask what the scenarios test
    from l2exp.sessions import sessions

    gap_ms = float(cfg.features.params.get("reset_gap_ms", 300_000))
    longest = max(sessions(book.timestamp.to_numpy(), gap_ms), key=lambda sl: sl.stop - sl.start)
    book = book.iloc[longest].reset_index(drop=True)
    inst = instrument_of(cfg, symbol)
    ex, st, rk = trading_params(cfg, symbol, inst)

    def fx_of(b: pd.DataFrame) -> np.ndarray:
        mid = 0.5 * (b.bid_price_1.to_numpy(float) + b.ask_price_1.to_numpy(float))
        return fx_series(inst, b.timestamp.to_numpy(np.int64), mid, lambda sym: store.read(symbols=[sym]))

    st, rk, scale = scaled_sizes(sc_cfg.get("size_notional"), inst, book, fx_of(book[:1]), st, rk, ex.lot_size)
    bundle = None
    if str(sc_cfg.signal) == "model":
        from l2exp.tracking.registry import load_bundle

        bundle = load_bundle(str(sc_cfg.model_uri), levels_available=levels)

    def signal_fn(b: pd.DataFrame, override: str | None) -> np.ndarray:
        kind = override or str(sc_cfg.signal)
        if kind == "long":
            return np.ones(len(b))
        if kind == "momentum":
            return momentum_signal(b)
        if bundle is None:
            raise UserError("stress.signal=model needs a model", where="stress.model_uri")
        res = bundle.feature_set.compute(b, levels)
        sig = np.full(len(b), np.nan)
        ready = res.ready
        if ready.any():
            sig[ready] = model_signal(bundle.predict_proba(res.features[ready]), bundle.task)
        return sig

    results = []
    for name, node in sc_cfg.scenarios.items():
        sc = instantiate(node)
        sc.name = str(name)
        results.append(run_scenario(sc, book, signal_fn, levels, ex.tick_size, ex, st, rk, inst, fx_of))
    passed = all(r["passed"] for r in results)
    rows = []
    for r in results:
        for check, c in r["checks"].items():
            rows.append({"scenario": r["scenario"], "check": check, "passed": c["passed"], "figure": c["figure"],
                         "limit": c["limit"], "pnl_net": r["pnl_net"], "kill_switch": r["kill_switch"]})
    table = pd.DataFrame(rows)
    tags = {"l2exp.symbol": symbol, "l2exp.risk": str(cfg.risk.name), "l2exp.stress_passed": str(passed)}
    name = f"stress {cfg.data.name} {symbol} risk={cfg.risk.name}"
    with tracked_run(run_context(cfg), "stress", run_name=name, tags=tags) as run:
        tlog.log_text(table.to_csv(index=False), "stress_results.csv")
        tlog.log_text(_html(table, symbol, str(cfg.risk.name), passed), "stress_results.html")
        tlog.log_text(json.dumps(results, indent=1, default=str), "stress_results.json")
        tlog.log_metrics({f"passed_{r['scenario']}": float(r["passed"]) for r in results} | {"passed": float(passed)})
        run_id = run.info.run_id
    summary = {"mode": "stress", "run_id": run_id, "symbol": symbol, "risk": str(cfg.risk.name), "passed": passed,
               "base_size": st.base_size, "unit_notional": rk.sizing.unit_notional,
               "max_position": rk.limits.max_position, "size_scale": scale,
               "limits_currency": inst.quote if rk.currency == "quote" else inst.settle, "scenarios": results}
    print_table(f"stress: {cfg.data.name} {symbol}, risk={cfg.risk.name}: {'PASSED' if passed else 'FAILED'}", [
        (r["scenario"], ("pass  " if r["passed"] else "FAIL  ") + ", ".join(
            f"{k} {v['figure']:.4g} ({v['limit']})" for k, v in r["checks"].items())) for r in results])
    write_summary(summary)
    from l2exp.tracking.setup import print_links, run_url

    print_links([("results", run_url(run_id))])
    if not passed and cfg.mode.get("fail_exit", True):
        failed = [r["scenario"] for r in results if not r["passed"]]
        raise UserError(f"stress suite failed: {failed}", where=f"MLflow run {run_id}, stress_results.html",
                        fix="Read the failed checks; tighten the risk profile (risk=...) before going live.")
    console.print("[bold green]every stress expectation held[/]")
    return summary
