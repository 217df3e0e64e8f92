"""Where runs go. Default: a SQLite tracking store under ``<workdir>/mlruns`` (MLflow 3 refuses the
plain file store) with artifacts beside it; ``MLFLOW_TRACKING_URI`` or ``tracking=server`` for a server.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
from omegaconf import DictConfig

from l2exp.errors import UserError

HTTP_ENV = {"timeout_s": "MLFLOW_HTTP_REQUEST_TIMEOUT", "max_retries": "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
            "backoff_factor": "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
            "backoff_jitter": "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"}


# MLflow 3's UI opens an experiment of unknown kind on its GenAI overview (traces, token usage); this
# tag (the UI's own ExperimentKind value) opens l2exp's experiments on the runs table of model training.
KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_TAGS = {KIND_TAG: "custom_model_development"}


def configure(cfg: DictConfig) -> str:
    """Point MLflow at the configured store; returns the tracking URI.

    A tracking server gets bounded HTTP behaviour (``tracking.http``, MLflow's own settings: MLflow's
    defaults retry for minutes -- 499 s blocked on a dead server) and is asked for ``/health`` first,
    so an unreachable server stops the run before it does any work."""
    uri = str(cfg.tracking.uri)
    if not uri or uri == "None":
        raise UserError("no MLflow tracking URI", where="tracking.uri / MLFLOW_TRACKING_URI",
                        fix="export MLFLOW_TRACKING_URI=http://host:5000 or use tracking=local")
    for key, env in HTTP_ENV.items():
        val = (cfg.tracking.get("http") or {}).get(key)
        if val is not None:
            os.environ[env] = str(int(val) if key in ("timeout_s", "max_retries", "backoff_factor") else float(val))
    if uri.startswith(("http://", "https://")):
        _preflight(uri, float((cfg.tracking.get("http") or {}).get("timeout_s", 5)))
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def _preflight(uri: str, timeout_s: float) -> None:
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s).raise_for_status()
    except requests.RequestException as exc:
        raise UserError(f"the tracking server {uri} is not reachable ({type(exc).__name__}): nothing was run",
                        where="tracking.uri / MLFLOW_TRACKING_URI",
                        fix="Start it (mlflow server --host 127.0.0.1 --port 5000 ...), fix the URI, or run "
                            "with tracking=local") from None


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` is the tracking server failing to answer (not a mistake in what was logged)."""
    import requests
    from mlflow.exceptions import MlflowException

    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    text = str(exc)
    return isinstance(exc, MlflowException) and "API request to" in text and any(
        s in text for s in ("Max retries exceeded", "Connection refused", "timed out", "ConnectionError",
                            "RemoteDisconnected", "Connection aborted"))


def experiment(cfg: DictConfig, mode: str) -> str:
    """Experiment per mode (``l2exp-train``, ``l2exp-backtest``...), artifacts under tracking.artifact_root."""
    name = f"{cfg.tracking.experiment_prefix}-{mode}"
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        root = cfg.tracking.get("artifact_root")
        location = Path(str(root)).resolve().joinpath(name).as_uri() if root else None
        exp_id = mlflow.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
    else:
        exp_id = exp.experiment_id
        if exp.tags.get(KIND_TAG) != EXPERIMENT_TAGS[KIND_TAG]:  # made by an older l2exp
            mlflow.MlflowClient().set_experiment_tag(exp_id, KIND_TAG, EXPERIMENT_TAGS[KIND_TAG])
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
