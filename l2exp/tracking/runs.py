"""A tracked run: resolved config, overrides, flattened params, git commit, nested under a sweep parent."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import mlflow
import yaml

from l2exp.config import PROJECT_ROOT
from l2exp.errors import UserError
from l2exp.redact import redact, redact_obj
from l2exp.summary import output_dir
from l2exp.tracking import journal as jr
from l2exp.tracking import log as tlog
from l2exp.tracking.context import RunContext, worker
from l2exp.tracking.setup import configure, experiment, is_outage


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


def named(run_name: str | None, overrides: tuple[str, ...] | list[str] = ()) -> str | None:
    """The run name plus the command line's choices (``model=catboost risk=aggressive``), so rows of a
    sweep or of hand-run variants say what differs. Where the run happens (mode, workdir, tracking) and
    Hydra's own settings are left out."""
    if run_name is None:
        return None
    said = [o for o in overrides if not o.lstrip("+~").startswith(
        ("hydra.", "hydra/", "mode=", "workdir=", "tracking", "mode.run_id", "seed="))]
    text = " ".join(said)
    return f"{run_name} | {text[:100]}" if said else run_name


@contextlib.contextmanager
def tracked_run(ctx: RunContext, mode: str, run_name: str | None = None,
                tags: dict[str, str] | None = None) -> Iterator[mlflow.ActiveRun]:
    """A run whose every call is journaled (:mod:`l2exp.tracking.journal`) under ``<output dir>/tracking``.

    If the server stops answering mid-run, the run still computes to its end (its calls go to the
    journal only), then stops with one message (exit 2) naming ``mode=relog`` to send what is missing.
    The server not answering *before* the run exists stops the run before any work."""
    uri = configure(ctx.tracking)
    exp_mode = ctx.experiment_mode or mode
    exp_name = ctx.tracking.experiment_name(exp_mode)
    parent = ctx.parent_run_id
    if not parent and ctx.in_sweep:
        raise UserError("this sweep has no MLflow parent run: creating it failed when the sweep started (the "
                        "warning from MlflowMultirunParent above says why), and its jobs would land loose in the "
                        "experiment", where="hydra.callbacks.mlflow_parent",
                        fix="Fix what the warning names (the tracking server / store) and start the sweep again.")
    resolved = ctx.config
    try:
        experiment(ctx.tracking, exp_mode)
        run = mlflow.start_run(run_name=named(run_name, ctx.overrides), parent_run_id=parent or None,
                               nested=bool(parent))
    except Exception as exc:
        if not is_outage(exc):
            raise
        raise _lost(mode, exc, None) from None
    root = output_dir() / "tracking"
    if (root / jr.STATE).exists():  # one process, several runs (pipeline steps): one journal each
        root = output_dir() / f"tracking-{run.info.run_id}"
    journal = jr.Journal(root, jr.JournalState(run.info.run_id, exp_name, run.info.run_name, parent, redact(uri)))
    jr.push(journal)
    status = "FAILED"
    try:
        tlog.set_tags({"l2exp.mode": mode, "git_commit": git_commit(), "l2exp.data": ctx.data_name,
                       "l2exp.worker": worker(),
                       **(tags or {})})
        params = {k: redact_obj(v) for k, v in flatten(resolved).items() if not k.startswith("hydra.")}
        items = list(params.items())
        for i in range(0, len(items), 100):
            tlog.log_params(dict(items[i:i + 100]))
        tlog.log_text(yaml.safe_dump(redact_obj(resolved), sort_keys=False), "config.yaml")
        tlog.log_text(yaml.safe_dump(redact_obj(list(ctx.overrides))), "overrides.yaml")
        yield run
        status = "FINISHED"
        journal.finish()
    except Exception as exc:
        if not is_outage(exc):  # a read outside the journal (run URL, registry lookup) met the dead server
            raise
        if journal.online:
            journal.go_offline(journal.seq + 1, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    finally:
        jr.pop()
        _end(journal, status)
    if not journal.online:
        raise _lost(mode, None, journal)


def _end(journal: jr.Journal, status: str) -> None:
    """End the active run; offline, without waiting on the dead server (one try, no retries)."""
    if journal.online:
        try:
            mlflow.end_run(status)
            return
        except Exception as exc:
            if not is_outage(exc):
                raise
            journal.go_offline(journal.seq + 1, f"end of run: {type(exc).__name__}")
            return
    saved = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    try:
        mlflow.end_run(status)  # pops the run locally before asking the server
    except Exception as exc:
        if not is_outage(exc):
            raise
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
        else:
            os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = saved


def _lost(mode: str, exc: BaseException | None, journal: jr.Journal | None) -> UserError:
    uri = mlflow.get_tracking_uri()
    bounds = (f"tracking.http.timeout_s / max_retries (now {os.environ.get('MLFLOW_HTTP_REQUEST_TIMEOUT')} s x "
              f"{os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES')} retries per request)")
    if journal is None:
        return UserError(f"the tracking server {uri} stopped answering before the {mode} run could start "
                         f"({type(exc).__name__}); nothing was run", where="tracking.uri / MLFLOW_TRACKING_URI",
                         fix=f"When the server is back, run the same command again. Bounds: {bounds}")
    state = journal.state
    done = "the run finished its work" if state.finished else "the run failed after that"
    return UserError(
        f"the tracking server {uri} stopped answering during the {mode} run {state.run_id} ({state.offline_reason}); "
        f"{done}, and everything it would have logged from then on is kept on disk in {journal.root}",
        where="tracking.uri / MLFLOW_TRACKING_URI",
        fix=f"When the server is back: l2exp mode=relog mode.run_id={state.run_id}   (sends what is missing into "
            f"the same run, or a new one if the server lost it; same workdir). Bounds: {bounds}")
