"""A typo'd or ill-typed key in conf/risk, conf/execution or conf/strategy is one clear message naming
the key (and the closest valid one), never a TypeError traceback or a silently ignored limit."""

from __future__ import annotations

import pytest

from l2exp.backtest.run import _params, run_backtest
from l2exp.errors import UserError
from l2exp.models.train import run_train
from l2exp.tracking.registry import run_promote
from tests.conftest import make_cfg, run_cli


@pytest.mark.parametrize(("override", "message", "closest"), [
    ("+risk.max_pos=3", "limits live under risk.limits", "risk.limits.max_pos"),
    ("+risk.limits.max_pos=3", "unknown key 'max_pos' in risk.limits", "risk.limits.max_position"),
    ("risk.limits.max_position=abc", "risk.limits.max_position must be a number", None),
    ("risk.limits.enabled=3", "risk.limits.enabled must be true or false", None),
    ("+execution.latncy_ms=3", "unknown key 'latncy_ms' in execution", "execution.latency_ms"),
    ("execution.queue_model=fifo", "execution.queue_model must be trades or size_decrease", None),
    ("+strategy.treshold=0.1", "unknown key 'treshold' in strategy", "strategy.threshold"),
    ("strategy.base_size=lots", "strategy.base_size must be a number", None),
])
def test_bad_keys_are_one_clear_message(override, message, closest):
    cfg = make_cfg(["mode=backtest", override])
    with pytest.raises(UserError, match=message) as e:
        from l2exp.backtest.params import pack

        pack(*_params(cfg, "SYNTH-USD"))
    if closest:
        assert closest in (e.value.fix or "") + (e.value.where or "")


def test_cli_typo_exits_2_without_traceback(workdir):
    small = ["data.reader.n_snapshots=20000", "features=minimal"]
    run_train(make_cfg(["mode=train", f"workdir={workdir}", *small, "model.n_estimators=10", "mode.progress=false"]))
    run_promote(make_cfg(["mode=promote", f"workdir={workdir}", "mode.require_beat_baseline=false"]))
    proc = run_cli(["mode=backtest", *small, "+risk.limits.max_pos=3"], workdir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "max_position" in proc.stderr
    ok = run_backtest(make_cfg(["mode=backtest", f"workdir={workdir}", *small, "risk.limits.max_position=3",
                                "mode.progress=false"]))
    assert ok["n_orders"] >= 0
