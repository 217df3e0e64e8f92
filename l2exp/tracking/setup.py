"""Where runs go. Default: a SQLite tracking store under ``<workdir>/mlruns`` (MLflow 3 refuses the
plain file store) with artifacts beside it; ``MLFLOW_TRACKING_URI`` or ``tracking=server`` for a server.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import mlflow
from rich.markup import escape

from l2exp.errors import UserError
from l2exp.redact import redact
from l2exp.tracking.context import TrackingSettings

HTTP_ENV = {"timeout_s": "MLFLOW_HTTP_REQUEST_TIMEOUT", "max_retries": "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
            "backoff_factor": "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
            "backoff_jitter": "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"}


# MLflow 3's UI opens an experiment on its GenAI overview (traces, token usage) whatever the experiment's kind
# (checked on 3.17 in Chromium): the kind tag is set for MLflow's own bookkeeping, and every URL l2exp prints
# carries ``workflowType=machine_learning``, the UI's switch to its model-training pages. The runs table of
# a fresh browser shows name, date, duration and source only; the UI has no per-experiment default column
# set, but it opens a *shared view* (``viewStateShareKey=<key>``: columns, sort, filters) stored as the
# experiment tag ``mlflow.sharedViewState.<key>`` -- l2exp writes one, and its experiment URL points at it.
KIND_TAG = "mlflow.experimentKind"
VIEW_KEY = "l2exp"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
UI_PARAMS = "workflowType=machine_learning"
VIEW_TAGS = ["l2exp.model", "l2exp.features", "l2exp.data", "l2exp.risk"]
VIEW_METRICS = ["val_log_loss", "test_log_loss", "baseline_best_val_log_loss", "val_beats_baseline", "pnl_net",
                "sharpe", "max_drawdown", "n_fills"]


def comparison_view() -> str:
    """The shared view l2exp's experiments open on: the selection metric (validation log loss), the test
    metric and the best baseline beside it, the backtest's money, and what differs (model, features, data,
    risk); run names say the rest. The UI groups the columns by kind and orders them itself."""
    cols = [f"metrics.`{m}`" for m in VIEW_METRICS] + [f"tags.`{t}`" for t in VIEW_TAGS]
    return json.dumps({"searchFilter": "", "orderByKey": "attributes.start_time", "orderByAsc": False,
                       "startTime": "ALL", "lifecycleFilter": "Active", "modelVersionFilter": "All Runs",
                       "datasetsFilter": [], "selectedColumns": cols})


EXPERIMENT_TAGS = {KIND_TAG: "custom_model_development", VIEW_TAG: comparison_view()}


def configure(settings: TrackingSettings) -> str:
    """Point MLflow at the configured store; returns the tracking URI.

    A tracking server gets bounded HTTP behaviour (``tracking.http``, MLflow's own settings: MLflow's
    defaults retry for minutes -- 499 s blocked on a dead server) and is asked for ``/health`` first,
    so an unreachable server stops the run before it does any work."""
    uri = str(settings.uri)
    if not uri or uri == "None":
        raise UserError("no MLflow tracking URI", where="tracking.uri / MLFLOW_TRACKING_URI",
                        fix="export MLFLOW_TRACKING_URI=http://host:5000 or use tracking=local")
    http = dict(settings.http or {})
    for key, env in HTTP_ENV.items():
        val = http.get(key)
        if val is not None:
            os.environ[env] = str(int(val) if key in ("timeout_s", "max_retries", "backoff_factor") else float(val))
    if uri.startswith(("http://", "https://")):
        _preflight(uri, float(http.get("timeout_s", 5)))
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    if redact(uri) != uri:  # MLflow prints its run links with the URI as given: l2exp prints its own, redacted
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    if uri.startswith("sqlite:///"):
        _init_sqlite_store(Path(uri[len("sqlite:///"):]), uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


@functools.cache
def _init_sqlite_store(db: Path, uri: str) -> None:
    """Once per store and process (a pipeline configures once per step); see ``local_store``."""
    from l2exp.tracking.local_store import create_or_open

    create_or_open(db, uri)


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
    import http.client

    import requests
    import urllib3
    from mlflow.exceptions import MlflowException

    # ChunkedEncodingError / IncompleteRead: the server died while its answer was on the wire
    if isinstance(exc, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError
                  | urllib3.exceptions.ProtocolError | http.client.IncompleteRead):
        return True
    text = str(exc)
    return isinstance(exc, MlflowException) and "API request to" in text and any(
        s in text for s in ("Max retries exceeded", "Connection refused", "timed out", "ConnectionError",
                            "RemoteDisconnected", "Connection aborted", "Connection broken", "IncompleteRead"))


def experiment(settings: TrackingSettings, mode: str) -> str:
    """Experiment per mode (``l2exp-train``, ``l2exp-backtest``...), artifacts under tracking.artifact_root."""
    from mlflow.exceptions import MlflowException

    name = settings.experiment_name(mode)
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        root = settings.artifact_root
        location = Path(str(root)).resolve().joinpath(name).as_uri() if root else None
        try:
            exp_id = mlflow.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
        except MlflowException:  # another worker created it between our look and our create: use theirs
            exp = mlflow.get_experiment_by_name(name)
            if exp is None:
                raise
            exp_id = exp.experiment_id
    else:
        exp_id = exp.experiment_id
        for key, value in EXPERIMENT_TAGS.items():
            if exp.tags.get(key) != value:  # made by an older l2exp
                mlflow.MlflowClient().set_experiment_tag(exp_id, key, value)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def _ui(page: str) -> str:
    """The UI address of ``page``: the server's own, or where ``mlflow ui`` serves a local store."""
    uri = mlflow.get_tracking_uri()
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else local_ui()
    return redact(f"{base}/{page}")  # a link to share: never with the server's password


def local_ui() -> str:
    """Where ``mlflow ui`` serves a local store: ``L2EXP_UI_URL`` (e.g. ``http://127.0.0.1:5050`` when you
    serve it on another port), else MLflow's default address; the printed serve command uses the same port."""
    return os.environ.get("L2EXP_UI_URL", "http://127.0.0.1:5000").rstrip("/")


def model_version_url(name: str, version: str | int) -> str:
    """A registered model version's page (its aliases, source run, metadata)."""
    return _ui(f"#/models/{name}/versions/{version}?{UI_PARAMS}")


def print_links(links: list[tuple[str, str]]) -> None:
    """Print each ``label: URL`` whole on one line (terminals make it clickable; a wrapped or cut URL
    is useless), then, for a local store, the one command that serves the UI at those addresses."""
    from l2exp.summary import console, print_where

    print_where(links)
    uri = mlflow.get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        from urllib.parse import urlparse

        at = urlparse(local_ui())
        serve = (f"(serve the UI: mlflow ui --backend-store-uri {uri} --host {at.hostname or '127.0.0.1'} "
                 f"--port {at.port or 5000} --workers 1)")
        console.print(escape(redact(serve)), soft_wrap=True)


def compare_url(run_ids: list[str], experiment_id: str) -> str:
    """MLflow's side-by-side comparison of exactly these runs."""
    from urllib.parse import quote

    return _ui(f"#/compare-runs?runs={quote(json.dumps(run_ids))}&experiments={quote(json.dumps([experiment_id]))}")


def experiment_url(experiment_id: str) -> str:
    """The experiment's runs table in l2exp's comparison view (columns: metrics, baseline, model, data)."""
    return _ui(f"#/experiments/{experiment_id}/runs?{UI_PARAMS}&viewStateShareKey={VIEW_KEY}")


def experiment_name(experiment_id: str) -> str:
    exp = mlflow.get_experiment(experiment_id)
    return exp.name if exp is not None else str(experiment_id)


def run_url(run_id: str, artifact: str | None = None) -> str:
    """Where to look at a run: its page in the MLflow UI, or one of its artifacts opened in the UI's
    preview (``report.html``). For a local store ``print_links`` adds the command that serves the UI."""
    exp_id = mlflow.get_run(run_id).info.experiment_id
    tail = f"/artifacts/{artifact}" if artifact else ""
    return _ui(f"#/experiments/{exp_id}/runs/{run_id}{tail}?{UI_PARAMS}")
