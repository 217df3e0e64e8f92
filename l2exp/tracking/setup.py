"""Where runs go. Default: a SQLite tracking store under ``<workdir>/mlruns`` (MLflow 3 refuses the
plain file store) with artifacts beside it; ``MLFLOW_TRACKING_URI`` or ``tracking=server`` for a server.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from omegaconf import DictConfig

from l2exp.errors import UserError


def configure(cfg: DictConfig) -> str:
    """Point MLflow at the configured store; returns the tracking URI."""
    uri = str(cfg.tracking.uri)
    if not uri or uri == "None":
        raise UserError("no MLflow tracking URI", where="tracking.uri / MLFLOW_TRACKING_URI",
                        fix="export MLFLOW_TRACKING_URI=http://host:5000 or use tracking=local")
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def experiment(cfg: DictConfig, mode: str) -> str:
    """Experiment per mode (``l2exp-train``, ``l2exp-backtest``...), artifacts under tracking.artifact_root."""
    name = f"{cfg.tracking.experiment_prefix}-{mode}"
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        root = cfg.tracking.get("artifact_root")
        location = Path(str(root)).resolve().joinpath(name).as_uri() if root else None
        exp_id = mlflow.create_experiment(name, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def ui_hint(uri: str) -> str:
    if uri.startswith("sqlite:"):
        return f"mlflow ui --backend-store-uri {uri} --workers 1   (then open http://127.0.0.1:5000)"
    return f"open {uri} in a browser"


def experiment_name(experiment_id: str) -> str:
    exp = mlflow.get_experiment(experiment_id)
    return exp.name if exp is not None else str(experiment_id)


def run_url(run_id: str) -> str:
    """Where to look at a run: its page in the MLflow UI (for a local store, with the command that serves it)."""
    uri = mlflow.get_tracking_uri()
    exp_id = mlflow.get_run(run_id).info.experiment_id
    page = f"#/experiments/{exp_id}/runs/{run_id}"
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{page}"
    return f"http://127.0.0.1:5000/{page}   (serve it: mlflow ui --backend-store-uri {uri} --workers 1)"
