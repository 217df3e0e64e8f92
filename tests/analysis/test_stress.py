"""The stress suite passes with the default risk profile and fails with risk disabled (it can fail)."""

from __future__ import annotations

import pytest

from l2exp.errors import UserError
from l2exp.modes.stress import run_stress
from tests.conftest import last_summary, make_cfg, needs_shared, run_cli

ARGS = ["mode=stress", "data=bitmex_ob10", "stress.signal=momentum"]
@needs_shared("bitmex/orderbook10_2020-03-10.csv.gz")
def test_passes_with_default_risk_and_fails_without(workdir):
    s = run_stress(make_cfg([*ARGS, f"workdir={workdir}"]))
    assert s["passed"] and s["symbol"] == "XBTUSD"
    assert {r["scenario"] for r in s["scenarios"]} == {"spread_blowout", "liquidity_hole", "flash_move", "feed_gap",
                                                     "stale_book", "latency_spike", "crossed_snapshots"}
    # sizes in money: one unit of the strategy's size is 8,000 USD (8,000 one-USD XBTUSD contracts), limits in USD
    assert s["base_size"] == 1 and s["unit_notional"] == 8000 and s["limits_currency"] == "USD"
    flash = next(r for r in s["scenarios"] if r["scenario"] == "flash_move")
    assert flash["checks"]["kill_switch_fires_or_loss_inside_limits"]["passed"]
    with pytest.raises(UserError, match="stress suite failed"):
        run_stress(make_cfg([*ARGS, f"workdir={workdir}", "risk=none"]))
    bad = last_summary(workdir)
    assert not bad["passed"] and bad["risk"] == "none"
    failed = {r["scenario"] for r in bad["scenarios"] if not r["passed"]}
    assert {"spread_blowout", "liquidity_hole", "stale_book", "feed_gap", "crossed_snapshots"} <= failed


@needs_shared("bitmex/orderbook10_2020-03-10.csv.gz")
def test_cli_exit_code_and_mlflow_table(workdir):
    proc = run_cli([*ARGS, "risk=none"], workdir)
    assert proc.returncode == 2 and "stress suite failed" in proc.stderr and "Traceback" not in proc.stderr
    # which check failed, its figure and its bound -- in the error and in the table's FAIL rows
    assert "FAILED " in proc.stderr and "(bound " in proc.stderr
    fail_rows = [ln for ln in proc.stdout.splitlines() if "FAIL:" in ln]
    assert fail_rows and all("FAILED " in ln for ln in fail_rows)
    import mlflow

    s = last_summary(workdir)
    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlruns/mlflow.db")
    html = mlflow.artifacts.load_text(f"runs:/{s['run_id']}/stress_results.html")
    assert "FAILED" in html and "flash_move" in html
