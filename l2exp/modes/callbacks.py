"""Hydra callback: a multirun (``-m``) becomes one MLflow parent run with a child run per job.

``on_multirun_start`` creates a shared Optuna study's storage, then the parent run, and exports its id
in ``L2EXP_PARENT_RUN_ID`` (jobs of the basic and joblib launchers inherit the environment); each
job's tracked run nests under it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

# How a sweep's jobs learn their parent run: jobs of the basic and joblib launchers inherit the driver's
# environment, Ray tasks get it through the launcher's runtime_env; l2exp.modes.build.run_context reads
# it into RunContext.parent_run_id -- the only place it is read. (Nothing heavy is imported at module
# level: Hydra builds this callback for every run, and MLflow's import costs ~2 s.)
PARENT_ENV = "L2EXP_PARENT_RUN_ID"


def report_failed_jobs(config: DictConfig) -> None:
    """At a sweep's end: how many jobs ran and which failed (``cli.failed_job`` left a record in each failed
    job's folder); any failed -> the sweep exits with the highest exit code of its jobs."""
    import json
    from pathlib import Path

    from l2exp.cli import FAILED_JOB

    if "hydra" not in config:
        return
    root = Path(str(config.hydra.sweep.dir))
    jobs = sorted(p.parent for p in root.rglob(".hydra/overrides.yaml")) if root.exists() else []
    failed = []
    for f in sorted(root.rglob(FAILED_JOB)) if root.exists() else []:
        try:
            failed.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            failed.append({"job": f.parent.name, "overrides": [], "message": f"unreadable record {f}", "exit_code": 1})
    if not failed:
        if jobs:
            print(f"sweep: {len(jobs)} job(s), all succeeded")
        return
    from l2exp.summary import print_table

    print_table(f"sweep: {len(jobs)} job(s), {len(jobs) - len(failed)} succeeded, {len(failed)} FAILED ({root})",
                [(f"job {r.get('job')}: {' '.join(r.get('overrides', []))}",
                  f"exit {r.get('exit_code')}: {str(r.get('message', '')).splitlines()[0][:200]}") for r in failed])
    sys.exit(max(int(r.get("exit_code", 1)) for r in failed))


class MlflowMultirunParent(Callback):
    def __init__(self) -> None:
        self.run_id: str | None = None
        self.ray_connected = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._study_storage(config)
        self._parent_run(config)
        self._connect_ray(config)

    def _study_storage(self, config: DictConfig) -> None:
        """A shared Optuna study's storage, created before the sweeper opens it (see ``optuna_storage``)."""
        sweeper = config.hydra.get("sweeper") if "hydra" in config else None
        storage = sweeper.get("storage") if sweeper is not None else None
        if isinstance(storage, str) and storage:
            from l2exp.errors import UserError
            from l2exp.tracking.optuna_storage import prepare_study_storage

            try:
                prepare_study_storage(storage)
            except UserError as err:  # Hydra turns a callback's exception into a warning: stop the sweep here
                print(err.render(), file=sys.stderr)
                sys.exit(2)

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

        from l2exp.modes.build import hydra_overrides, tracking_settings
        from l2exp.tracking.context import worker
        from l2exp.tracking.runs import git_commit
        from l2exp.tracking.setup import configure, experiment

        settings = tracking_settings(config)
        configure(settings)
        exp_id = experiment(settings, str(config.mode.name))
        client = MlflowClient()
        sweep = " ".join(config.hydra.overrides.task) if "hydra" in config else ""
        run = client.create_run(exp_id, run_name=f"sweep {sweep}"[:250],
                                tags={"l2exp.mode": str(config.mode.name), "l2exp.sweep": "parent",
                                      "git_commit": git_commit(),
                                      "l2exp.worker": worker()})
        self.run_id = run.info.run_id
        os.environ[PARENT_ENV] = self.run_id
        client.log_text(self.run_id, "\n".join(hydra_overrides()) or sweep, "sweep_overrides.txt")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self._close(config)
        finally:
            report_failed_jobs(config)

    def _close(self, config: DictConfig) -> None:
        if self.ray_connected:
            import ray

            ray.shutdown()
        if self.run_id:
            from mlflow import MlflowClient

            MlflowClient().set_terminated(self.run_id)
            os.environ.pop(PARENT_ENV, None)
            print(f"MLflow sweep parent run: {self.run_id}")
