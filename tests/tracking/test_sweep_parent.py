"""A sweep job whose MLflow parent run is missing stops with one message instead of logging loose runs
(Hydra only warns when a callback fails, so the job is where it is caught)."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from l2exp.config import CONF_DIR
from l2exp.errors import UserError
from l2exp.modes.build import run_context
from l2exp.modes.callbacks import PARENT_ENV
from l2exp.tracking.runs import tracked_run
from tests.conftest import make_cfg


def test_a_sweep_job_without_its_parent_run_stops(workdir, monkeypatch):
    monkeypatch.delenv(PARENT_ENV, raising=False)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        HydraConfig.instance().set_config(compose("config", overrides=["mode=train", "hydra.mode=MULTIRUN"],
                                                  return_hydra_config=True))
    cfg = make_cfg(["mode=train"])
    try:
        ctx = run_context(cfg)
        assert ctx.in_sweep and ctx.parent_run_id is None
        with pytest.raises(UserError, match="no MLflow parent run"), tracked_run(ctx, "train", run_name="x"):
            pass
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            HydraConfig.instance().set_config(compose("config", overrides=["mode=train", "hydra.mode=RUN",
                                                                           f"hydra.runtime.output_dir={workdir}"],
                                                      return_hydra_config=True))
        with tracked_run(run_context(cfg), "train", run_name="single run") as run:  # outside a sweep: no parent needed
            assert run.info.run_id
    finally:
        HydraConfig.instance().cfg = None
