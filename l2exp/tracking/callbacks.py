"""Hydra callback: a multirun (``-m``) becomes one MLflow parent run with a child run per job.

``on_multirun_start`` creates the parent run and exports its id in ``L2EXP_PARENT_RUN_ID`` (jobs of
the basic and joblib launchers inherit the environment); each job's tracked run nests under it.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

PARENT_ENV = "L2EXP_PARENT_RUN_ID"  # (l2exp.tracking.runs imports it from here: Hydra builds this
# callback for every run, and MLflow's import costs ~2 s that a validate or ingest run does not need)


def worker() -> str:
    """``host:pid`` of this process, tagged on every run (``l2exp.worker``): a sweep's children show whether
    they ran in the driver or in a Ray worker."""
    return f"{socket.gethostname()}:{os.getpid()}"


class MlflowMultirunParent(Callback):
    def __init__(self) -> None:
        self.run_id: str | None = None
        self.ray_connected = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._parent_run(config)
        self._connect_ray(config)

    def _connect_ray(self, config: DictConfig) -> None:
        """Connect the driver to the Ray cluster before Hydra's Ray launcher does: the launcher (1.2) adds
        ``object_store_memory`` to ``ray.init``, which Ray 2 refuses when joining an existing cluster; it
        skips its own ``ray.init`` when Ray is connected. Resolved here, after the parent run exists, so the
        tasks' environment carries its id."""
        launcher = config.hydra.launcher if "hydra" in config else None
        if launcher is None or not str(launcher.get("_target_", "")).endswith("hydra_ray_launcher.ray_launcher"
                                                                             ".RayLauncher"):
            return
        import ray

        if not ray.is_initialized():
            ray.init(**OmegaConf.to_container(launcher.ray.init, resolve=True))
            self.ray_connected = True

    def _parent_run(self, config: DictConfig) -> None:
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
                                      "l2exp.worker": worker()})
        self.run_id = run.info.run_id
        os.environ[PARENT_ENV] = self.run_id
        client.log_text(self.run_id, "\n".join(overrides()) or sweep, "sweep_overrides.txt")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.ray_connected:
            import ray

            ray.shutdown()
        if self.run_id:
            from mlflow import MlflowClient

            MlflowClient().set_terminated(self.run_id)
            os.environ.pop(PARENT_ENV, None)
            print(f"MLflow sweep parent run: {self.run_id}")
