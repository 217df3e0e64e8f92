"""``mode=relog mode.path=<journal dir>``: send what a run could not log while the tracking server was down.

The journal (:mod:`l2exp.tracking.journal`) holds every call of the run in order, and from which
call on the server stopped answering. If the server still has the run, the unsent calls go into
*that* run (the run id printed before stays right) and it is marked finished; if the server lost it
(a new server, a deleted run), every call goes into a new run of the same experiment, tagged
``l2exp.relogged_from``. A registered model gets its real version, replacing the placeholder tag.
Re-logging twice is refused (``mode.force=true`` to send again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient

from l2exp.errors import UserError
from l2exp.tracking import journal as jr
from l2exp.tracking.log import PENDING, SENDERS


def journals_under(path: Path) -> list[Path]:
    """Journal directories at ``path``: the path itself, or every one below it (a sweep's output)."""
    if (path / jr.STATE).exists():
        return [path]
    return sorted(p.parent for p in path.rglob(jr.STATE))


def relog(root: Path, force: bool = False) -> dict[str, Any]:
    """Send one journal's unsent calls; returns what was done."""
    state, entries = jr.read(root)
    if state.relogged_as and not force:
        raise UserError(f"{root} was already re-logged into run {state.relogged_as}", where="mode.path",
                        fix="Nothing to do; mode.force=true sends it again.")
    client = MlflowClient()
    try:
        existing = client.get_run(state.run_id)
    except mlflow.exceptions.MlflowException:
        existing = None
    if existing is not None and state.offline_from is None and not force:
        return {"path": str(root), "run_id": state.run_id, "sent": 0, "into": "nothing missing"}
    if existing is not None:
        start = 1 if force else state.offline_from
        todo = [e for e in entries if e["seq"] >= start]
        run = mlflow.start_run(run_id=state.run_id)
        into = "same run"
    else:
        exp = mlflow.get_experiment_by_name(state.experiment)
        exp_id = exp.experiment_id if exp is not None else mlflow.create_experiment(state.experiment)
        parent = state.parent_run_id if state.parent_run_id and _exists(client, state.parent_run_id) else None
        run = mlflow.start_run(experiment_id=exp_id, run_name=state.run_name, parent_run_id=parent,
                               nested=bool(parent), tags={"l2exp.relogged_from": state.run_id})
        todo = entries
        into = "new run (the server did not have the original)"
    sent = _metric_points(client, existing, todo) if existing is not None else set()
    version = None
    try:
        for entry in todo:
            files = root / "files" / str(entry["seq"])
            args = entry["args"]
            if entry["call"] == "metrics":  # the call the server dropped may have landed: no point twice
                args = {**args, "metrics": {k: v for k, v in args["metrics"].items()
                                            if (k, args["timestamp"], args["step"] or 0) not in sent}}
                if not args["metrics"]:
                    continue
            if entry["call"] == "tags" and version is not None and "l2exp.model_version" in args["tags"]:
                args = {**args, "tags": {**args["tags"], "l2exp.model_version": version}}
            out = SENDERS[entry["call"]](args, files)
            if entry["call"] == "model":
                version = out
        if version is not None:
            mlflow.set_tag("l2exp.model_version", version)
        elif any(e["call"] == "tags" and e["args"]["tags"].get("l2exp.model_version") == PENDING for e in todo):
            raise UserError(f"{root}: the run tags a model that its journal never saved", where=str(root),
                            fix="Train again (l2exp mode=train ...); this run's model cannot be recovered.")
        status = "FINISHED" if state.finished else "FAILED"
        mlflow.end_run(status)
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    jr.mark_relogged(root, run.info.run_id)
    return {"path": str(root), "run_id": run.info.run_id, "original_run_id": state.run_id, "sent": len(todo),
            "into": into, "model_version": version, "status": status}


def _metric_points(client: MlflowClient, run: Any, todo: list[dict[str, Any]]) -> set[tuple[str, int, int]]:
    """(key, timestamp, step) of the points the run already has, for the metric keys about to be sent."""
    keys = {k for e in todo if e["call"] == "metrics" for k in e["args"]["metrics"]} & set(run.data.metrics)
    return {(m.key, m.timestamp, m.step) for k in sorted(keys) for m in client.get_metric_history(run.info.run_id, k)}


def _exists(client: MlflowClient, run_id: str) -> bool:
    try:
        client.get_run(run_id)
        return True
    except mlflow.exceptions.MlflowException:
        return False


def journal_of_run(outputs: Path, run_id: str) -> list[Path]:
    """The journal of run ``run_id`` among the runs under ``outputs`` (the workdir's Hydra outputs)."""
    for state in outputs.rglob(jr.STATE):
        if jr.read(state.parent)[0].run_id == run_id:
            return [state.parent]
    return []
