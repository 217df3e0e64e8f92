"""A typo'd or ill-typed key in conf/risk, conf/execution or conf/strategy is one clear message naming
the key (and the closest valid one), never a TypeError traceback or a silently ignored limit."""

from __future__ import annotations

import pytest

from l2exp.errors import UserError
from l2exp.modes.backtest import run_backtest
from l2exp.modes.promote import run_promote
from l2exp.modes.trading import trading_params
from l2exp.modes.train import run_train
from tests.conftest import make_cfg, run_cli


@pytest.mark.parametrize(("override", "message", "closest"), [
    ("+risk.max_pos=3", "unknown key 'max_pos' in risk", "risk.limits.max_position"),
    ("+risk.limits.max_pos=3", "unknown key 'max_pos' in risk.limits", "risk.limits.max_position"),
    ("+risk.limits.max_daily_loss=3", "unknown key 'max_daily_loss' in risk.limits", None),
    ("risk.limits.max_position=abc", "risk.limits.max_position must be a number", None),
    ("risk.limits.max_position=-1", "risk.limits.max_position must be >= 0", None),
    ("risk.enabled=3", "risk.enabled must be true or false", None),
    ("risk.currency=eur", "risk.currency must be quote or settle", None),
    ("+risk.sizing.vol_halflife=3", "unknown key 'vol_halflife' in risk.sizing", "risk.sizing.vol_halflife_s"),
    ("risk.sizing.vol_halflife_s=0", "risk.sizing.vol_halflife_s must be > 0", None),
    ("+risk.gates.stale=3", "unknown key 'stale' in risk.gates", "risk.gates.stale_ms"),
    ("+risk.kill_switch.max_dd=3", "unknown key 'max_dd' in risk.kill_switch", "risk.kill_switch.max_drawdown"),
    ("+execution.latncy_ms=3", "unknown key 'latncy_ms' in execution", "execution.latency_ms"),
    ("execution.latency_ms=-5", "execution.latency_ms must be >= 0", None),
    ("execution.queue_model=fifo", "execution.queue_model must be a mapping with _target_", None),
    ("+execution.queue_model.front=0.2", "unknown key 'front' in execution.queue_model",
     "execution.queue_model.front_prob"),
    ("execution.queue_model.front_prob=2", "execution.queue_model.front_prob must be in", None),
    ("execution.queue_model._target_=l2exp.backtest.orders.market.Market", "is not a QueueModel", None),
    ("execution.order_type._target_=l2exp.nothing.Here", "cannot be imported", None),
    ("+strategy.treshold=0.1", "unknown key 'treshold' in strategy", "strategy.threshold"),
    ("strategy.base_size=lots", "strategy.base_size must be a number", None),
    ("strategy.decision_ms=-1", "strategy.decision_ms must be >= 0", None),
])
def test_bad_keys_are_one_clear_message(override, message, closest):
    cfg = make_cfg(["mode=backtest", override])
    with pytest.raises(UserError, match=message) as e:
        trading_params(cfg, "SYNTH-USD")
    if closest:
        assert closest in (e.value.fix or "") + (e.value.where or "")


def test_every_plugin_choice_builds():
    """Each file of the plug-in groups composes and builds into its class (a broken YAML fails here)."""
    from l2exp.config import CONF_DIR

    for group in ("execution/queue_model", "execution/order_type", "strategy"):
        for f in sorted((CONF_DIR / group).glob("*.yaml")):
            ex, st, rk = trading_params(make_cfg(["mode=backtest", f"{group}={f.stem}"]), "SYNTH-USD")
            built = {"execution/queue_model": ex.queue_model, "execution/order_type": ex.order_type,
                     "strategy": st}[group]
            assert type(built).kernel is not None, (group, f.stem)


def test_cli_typo_exits_2_without_traceback(workdir):
    small = ["data.reader.n_snapshots=20000", "features=minimal"]
    run_train(make_cfg(["mode=train", f"workdir={workdir}", *small, "model.n_estimators=10", "mode.progress=false"]))
    run_promote(make_cfg(["mode=promote", f"workdir={workdir}", "mode.require_beat_baseline=false"]))
    proc = run_cli(["mode=backtest", *small, "+risk.limits.max_pos=3"], workdir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "max_position" in proc.stderr
    ok = run_backtest(make_cfg(["mode=backtest", f"workdir={workdir}", *small, "risk.limits.max_position=3",
                                "mode.progress=false"]))
    assert ok["n_orders"] >= 0
