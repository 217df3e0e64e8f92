"""A tracked run: resolved config, overrides, flattened params, git commit, nested under a sweep parent."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import mlflow
from omegaconf import DictConfig, OmegaConf

from l2exp.config import PROJECT_ROOT
from l2exp.errors import UserError
from l2exp.summary import output_dir
from l2exp.tracking.setup import configure, experiment, is_outage

PARENT_ENV = "L2EXP_PARENT_RUN_ID"
# set by mode=pipeline: every step logs into the pipeline experiment, nested under its parent run
EXPERIMENT_ENV = "L2EXP_EXPERIMENT_MODE"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def flatten(d: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = str(d)[:5000]
    return out


def overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


@contextlib.contextmanager
def tracked_run(cfg: DictConfig, mode: str, run_name: str | None = None,
                tags: dict[str, str] | None = None) -> Iterator[mlflow.ActiveRun]:
    configure(cfg)
    experiment(cfg, os.environ.get(EXPERIMENT_ENV, mode))
    parent = os.environ.get(PARENT_ENV)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    try:
        with _run(cfg, mode, resolved, run_name, parent, tags) as run:
            yield run
    except Exception as exc:
        if not is_outage(exc):
            raise
        raise UserError(
            f"the tracking server {mlflow.get_tracking_uri()} stopped answering during the {mode} run "
            f"({type(exc).__name__}): what the run logged after that point is lost, and the run is not marked "
            f"finished there (its config is in {output_dir()}/.hydra)",
            where="tracking.uri / MLFLOW_TRACKING_URI",
            fix=f"When the server is back, run the same command again (runs are deterministic for a seed); "
                f"the incomplete run can be deleted in the UI. Bounds: tracking.http.timeout_s / max_retries "
                f"(now {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT')} s x "
                f"{os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES')} retries per request)") from None


@contextlib.contextmanager
def _run(cfg: DictConfig, mode: str, resolved: dict, run_name: str | None, parent: str | None,
         tags: dict[str, str] | None) -> Iterator[mlflow.ActiveRun]:
    with mlflow.start_run(run_name=run_name, parent_run_id=parent or None, nested=bool(parent)) as run:
        mlflow.set_tags({"l2exp.mode": mode, "git_commit": git_commit(), "l2exp.data": str(cfg.data.name),
                         **(tags or {})})
        params = {k: v for k, v in flatten(resolved).items() if not k.startswith("hydra.")}
        items = list(params.items())
        for i in range(0, len(items), 100):
            mlflow.log_params(dict(items[i:i + 100]))
        mlflow.log_text(OmegaConf.to_yaml(resolved), "config.yaml")
        mlflow.log_text(OmegaConf.to_yaml(overrides()), "overrides.yaml")
        yield run
