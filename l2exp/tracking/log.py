"""Every MLflow call a tracked run makes, through one door: journaled first, then sent.

Same names and arguments as ``mlflow.log_*`` so call sites read as before. Inside a
:func:`l2exp.tracking.runs.tracked_run` each call is written to the run's
:class:`~l2exp.tracking.journal.Journal` (files included) and then sent; when the server stops
answering, the journal goes offline and the run continues to its end with nothing lost. Outside a
tracked run (the pipeline's parent run, a sweep's parent) calls go straight to MLflow.

Each call is one *sender* (``SENDERS``) that reads only the journal entry's arguments and files, so
the live run and ``mode=relog`` send exactly the same thing.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from rich.markup import escape

from l2exp.tracking import journal as jr

# the model version a run tags while its model waits in the journal; mode=relog puts the real one in
PENDING = "pending-relog"

Sender = Callable[[dict[str, Any], Path], Any]


def _send_metrics(args: dict[str, Any], files: Path) -> None:
    mlflow.log_metrics(args["metrics"], step=args.get("step"), timestamp=args.get("timestamp"))


def _send_params(args: dict[str, Any], files: Path) -> None:
    mlflow.log_params(args["params"])


def _send_tags(args: dict[str, Any], files: Path) -> None:
    mlflow.set_tags(args["tags"])


def _send_file(args: dict[str, Any], files: Path) -> None:
    """Text, figures and single files alike: the file under ``files`` logged at ``artifact_path``."""
    mlflow.log_artifact(str(files / args["name"]), args.get("artifact_path") or None)


def _send_dir(args: dict[str, Any], files: Path) -> None:
    mlflow.log_artifacts(str(files / "dir"), args.get("artifact_path") or None)


def _send_input(args: dict[str, Any], files: Path) -> None:
    """Log the dataset as the run's input. Jobs of one sweep running at once log the same dataset (same
    experiment, name, digest): the tracking server looks it up, then inserts it, and the second insert of
    a race fails its unique constraint (seen on a Ray sweep). The dataset exists by then, so the call is
    made again -- at most twice more -- and links it."""
    from mlflow.exceptions import RestException

    sample = pd.read_parquet(files / "sample.parquet")
    with warnings.catch_warnings():  # the int64 timestamp column triggers a schema hint meant for model inputs
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(sample, source=args["source"], name=args["name"], digest=args["digest"])
        for attempt in range(3):
            try:
                mlflow.log_input(ds, context=args["context"], tags=args["tags"])  # the schema is inferred here
                return
            except RestException as exc:
                if "UNIQUE constraint failed: datasets" not in str(exc) or attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))


def _send_model(args: dict[str, Any], files: Path, native: Any = None) -> str | None:
    """Log the saved model (native flavour) and register it; returns the registered version."""
    from mlflow.models import Model

    flavor = getattr(mlflow, args["flavor"])
    saved = files / "model"
    meta = Model.load(str(saved))
    native = flavor.load_model(str(saved)) if native is None else native
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        info = flavor.log_model(native, name="model", signature=meta.signature,
                                input_example=meta.load_input_example(str(saved)),
                                registered_model_name=args["registered_name"],
                                pip_requirements=args["pip_requirements"], metadata=meta.metadata,
                                await_registration_for=60)
    version = getattr(info, "registered_model_version", None)
    return None if version is None else str(version)


SENDERS: dict[str, Sender] = {"metrics": _send_metrics, "params": _send_params, "tags": _send_tags,
                              "file": _send_file, "dir": _send_dir, "input": _send_input, "model": _send_model}


def _call(call: str, args: dict[str, Any], write: Callable[[Path], None] | None = None,
          send: Callable[[Path], Any] | None = None) -> Any:
    """Journal one call (``write`` puts its files in place), then send it unless the server is gone."""
    from l2exp.tracking.setup import is_outage

    sender = send or (lambda files: SENDERS[call](args, files))
    journal = jr.active()
    if journal is None:
        with tempfile.TemporaryDirectory() as tmp:
            if write:
                write(Path(tmp))
            return sender(Path(tmp))
    seq = journal.next_seq()
    files = journal.files_dir(seq)
    if write:
        write(files)
    journal.append(seq, call, args)
    if not journal.online:
        return None
    try:
        return sender(files)
    except Exception as exc:
        if not is_outage(exc):
            raise
        from l2exp.redact import redact
        from l2exp.summary import console

        journal.go_offline(seq, redact(f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"))
        console.print(f"[bold red]the tracking server {escape(redact(mlflow.get_tracking_uri()))} stopped answering[/] "
                      f"({type(exc).__name__}); the run goes on and keeps everything in {escape(str(journal.root))}")
        return None


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    _call("metrics", {"metrics": {k: float(v) for k, v in metrics.items()}, "step": step,
                      "timestamp": int(time.time() * 1000)})


def log_metric(key: str, value: float, step: int | None = None) -> None:
    log_metrics({key: value}, step=step)


def log_params(params: dict[str, Any]) -> None:
    _call("params", {"params": {k: str(v) for k, v in params.items()}})


def set_tags(tags: dict[str, Any]) -> None:
    _call("tags", {"tags": {k: str(v) for k, v in tags.items()}})


def _split(artifact_file: str) -> tuple[str, str]:
    path = Path(artifact_file)
    return path.name, "" if str(path.parent) == "." else path.parent.as_posix()


def log_text(text: str, artifact_file: str) -> None:
    name, parent = _split(artifact_file)
    _call("file", {"name": name, "artifact_path": parent},
          write=lambda files: (files / name).write_text(text, encoding="utf-8"))


def log_figure(figure: Any, artifact_file: str) -> None:
    """A matplotlib figure saved as MLflow's ``log_figure`` saves it (``savefig``, the file's format)."""
    import matplotlib.pyplot as plt

    name, parent = _split(artifact_file)

    def write(files: Path) -> None:
        figure.savefig(files / name)
        plt.close(figure)  # pyplot keeps every figure until closed

    _call("file", {"name": name, "artifact_path": parent}, write=write)


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> None:
    name = Path(local_path).name
    _call("file", {"name": name, "artifact_path": artifact_path or ""},
          write=lambda files: shutil.copy2(local_path, files / name))


def log_artifacts(local_dir: str | Path, artifact_path: str | None = None) -> None:
    _call("dir", {"artifact_path": artifact_path or ""},
          write=lambda files: shutil.copytree(local_dir, files / "dir", dirs_exist_ok=True))


def log_input(sample: pd.DataFrame, source: str, name: str, digest: str, context: str,
              tags: dict[str, str]) -> None:
    """A ``mlflow.data`` pandas dataset built from ``sample`` (the first rows of the data), logged as input."""
    _call("input", {"source": source, "name": name, "digest": digest, "context": context, "tags": tags},
          write=lambda files: sample.to_parquet(files / "sample.parquet"))


def log_model(flavor: str, native: Any, registered_name: str, signature: Any, input_example: pd.DataFrame,
              pip_requirements: list[str], metadata: dict[str, Any]) -> str | None:
    """Save the native model in MLflow's ``flavor`` format (kept in the journal), log it as the run's
    ``model`` and register it under ``registered_name``; returns the version (None while offline)."""
    args = {"flavor": flavor, "registered_name": registered_name, "pip_requirements": pip_requirements}

    def write(files: Path) -> None:
        with warnings.catch_warnings():  # integer columns in the example: a hint meant for serving inputs
            warnings.simplefilter("ignore", UserWarning)
            getattr(mlflow, flavor).save_model(native, str(files / "model"), signature=signature,
                                               input_example=input_example, pip_requirements=pip_requirements,
                                               metadata=metadata)

    return _call("model", args, write=write, send=lambda files: _send_model(args, files, native))
