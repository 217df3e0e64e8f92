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

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """A sweep's job says which it is and how the sweep stands (jobs started, failed so far): a 6-job sweep
        was a stream of per-job tables with nothing saying where it was."""
        from pathlib import Path

        from hydra.types import RunMode

        if "hydra" not in config or config.hydra.get("mode") != RunMode.MULTIRUN:
            return
        from l2exp.cli import FAILED_JOB

        root = Path(str(config.hydra.sweep.dir))
        started = sum(1 for _ in root.glob("*/.hydra")) if root.exists() else 0
        failed = sum(1 for _ in root.glob(f"*/{FAILED_JOB}")) if root.exists() else 0
        print(f"sweep job #{int(config.hydra.job.num)}: {' '.join(config.hydra.overrides.task)} "
              f"({max(started - 1, 0)} job(s) before it, {failed} failed so far)", flush=True)

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

            client = MlflowClient()
            try:
                sweep_comparison(client, self.run_id, _sweep_metric(config))
            finally:
                client.set_terminated(self.run_id)
                os.environ.pop(PARENT_ENV, None)


# the metric a sweep's table is ordered by when it optimises none (optimized_metric): the mode's own
SWEEP_METRIC = {"train": "val_log_loss", "pipeline": "val_log_loss", "backtest": "pnl_net", "stress": "pnl_net",
                "sim": "pnl_net"}


def _sweep_metric(config: DictConfig) -> str:
    chosen = config.get("optimized_metric")
    mode = str(config.mode.name) if "mode" in config else ""
    return str(chosen or SWEEP_METRIC.get(mode, "val_log_loss"))


def sweep_comparison(client: Any, parent_id: str, metric: str) -> None:
    """A sweep ends with its comparison: one row per job (run name = its overrides), the sweep's metric and
    the view's key metrics, best first; the link to MLflow's comparison of exactly these runs; the parent
    run carries the best job's metrics (``best_<metric>``, tag ``l2exp.best_run``). It ended with a bare id."""
    from l2exp.models.selection import direction_of
    from l2exp.summary import money, print_table
    from l2exp.tracking.setup import VIEW_METRICS, compare_url, print_links, run_url

    exp_id = client.get_run(parent_id).info.experiment_id
    kids = client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{parent_id}'", max_results=5000)
    if not kids:
        print(f"MLflow sweep parent run: {parent_id} (no job logged a run)")
        return
    sign = 1.0 if direction_of(metric) == "min" else -1.0
    nan = float("nan")

    def key(r: Any) -> tuple[bool, float]:
        v = r.data.metrics.get(metric, nan)
        return (v != v, sign * v if v == v else 0.0)

    kids = sorted(kids, key=key)
    shown = [m for m in VIEW_METRICS if m != metric and any(m in r.data.metrics for r in kids)][:3]
    def value(r: Any, m: str) -> str:
        v = r.data.metrics.get(m, nan)
        if v == v and float(v).is_integer() and abs(v) < 1e15 and not m.startswith(("pnl", "max_drawdown")):
            return f"{int(v):,}"  # counts: fills, orders
        cur = r.data.tags.get("l2exp.settle_currency", "") if m.startswith(("pnl_net", "pnl_gross", "max_drawdown")) \
            and not m.endswith("_quote") else ""
        return money(v, cur)

    rows = []
    for r in kids:
        cells = [f"{metric} {value(r, metric)}"] + [f"{m} {value(r, m)}" for m in shown if m in r.data.metrics]
        rows.append((r.info.run_name or r.info.run_id, "   ".join(cells)))
    print_table(f"sweep: {len(kids)} job(s), best first by {metric} ({direction_of(metric)})", rows)
    best = kids[0]
    for m, v in best.data.metrics.items():
        if m in (metric, *VIEW_METRICS):
            client.log_metric(parent_id, f"best_{m}", v)
    client.set_tag(parent_id, "l2exp.best_run", best.info.run_id)
    print_links([("compare these runs", compare_url([r.info.run_id for r in kids], exp_id)),
                 ("best job", run_url(best.info.run_id)),
                 ("sweep parent run", run_url(parent_id))])
