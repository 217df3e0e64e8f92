"""Hydra callback: a multirun (``-m``) becomes one MLflow parent run with a child run per job.

``on_multirun_start`` creates the parent run and exports its id in ``L2EXP_PARENT_RUN_ID`` (jobs of
the basic and joblib launchers inherit the environment); each job's tracked run nests under it.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

PARENT_ENV = "L2EXP_PARENT_RUN_ID"  # (l2exp.tracking.runs imports it from here: Hydra builds this
# callback for every run, and MLflow's import costs ~2 s that a validate or ingest run does not need)


class MlflowMultirunParent(Callback):
    def __init__(self) -> None:
        self.run_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "tracking" not in config or not config.mode.get("tracked", False):
            return
        from mlflow import MlflowClient

        from l2exp.tracking.runs import git_commit, overrides
        from l2exp.tracking.setup import configure, experiment

        configure(config)
        exp_id = experiment(config, str(config.mode.name))
        client = MlflowClient()
        sweep = " ".join(config.hydra.overrides.task) if "hydra" in config else ""
        run = client.create_run(exp_id, run_name=f"sweep {sweep}"[:250],
                                tags={"l2exp.mode": str(config.mode.name), "l2exp.sweep": "parent",
                                      "git_commit": git_commit(),
                                      "l2exp.worker": f"{socket.gethostname()}:{os.getpid()}"})
        self.run_id = run.info.run_id
        os.environ[PARENT_ENV] = self.run_id
        client.log_text(self.run_id, "\n".join(overrides()) or sweep, "sweep_overrides.txt")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.run_id:
            from mlflow import MlflowClient

            MlflowClient().set_terminated(self.run_id)
            os.environ.pop(PARENT_ENV, None)
            print(f"MLflow sweep parent run: {self.run_id}")
